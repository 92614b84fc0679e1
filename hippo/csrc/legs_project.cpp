// HiPPO-LegS online projection of whole sequences, O(N) per step (forward only, no autograd).
//
// Plain C entry points over raw contiguous buffers, called from hippo/project.py via ctypes;
// only <ATen/Parallel.h> is included (at::parallel_for; serial unless built with OpenMP,
// see hippo/_ext.py) so the build
// stays short. The math is the one documented in hippo/legs.py: a GBT(alpha) step of
// c' = A c / t + B f / t with effective step d = (t1 - t0)/t1,
//   r   = c + (1 - alpha) d A c + d B f,       A c = -s * exclusive_cumsum(s c) - (n+1) c
//   x_n = (r_n - e s_n R_n) / (1 + e(n+1)),   R_{n+1} = a_n R_n + s_n r_n / (1 + e(n+1)),
// with e = alpha d and a_n = (1 - e n)/(1 + e(n+1)); |a_n| < 1, so the recurrence is stable.
//
// Precision: the running state and all per-step arithmetic are double for both entry points;
// the float32 one only reads float inputs (f, ratio, initial state) and writes float outputs.
// Accumulating in float drifted by ~7e-4 relative (1.3e-3 max) after 2e5 steps at N = 256; in
// double the float32 result is the float64 one rounded (measured 5e-8 max relative, the float
// rounding itself is 3e-8), for ~2% more time than the float loop (the loop is bound by its
// instruction count and one division per element, not by width; n is counted rather than
// loaded from a table to keep the double loop free of register spills).
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace {

// state: (B, N) in/out. f: (B, L). ratio: dt_ratio per (b, k) with row stride ratio_bstride
// (0 when the batch shares it). init_first: element 0 sets c = (f_0, 0, ..., 0) (t = 0).
// out_all: (B, L, N) or nullptr. T is the storage type; the computation is in double.
template <typename T>
void legs_project(T* state, const T* f, const T* ratio, int64_t ratio_bstride, T* out_all,
                  int64_t B, int64_t L, int64_t N, double alpha, int init_first) {
  std::vector<double> s(N);
  for (int64_t n = 0; n < N; ++n) s[n] = std::sqrt(2.0 * n + 1.0);
  const double al = alpha;
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<double> cbuf(N);  // the running state of one row, in double
    double* c = cbuf.data();
    const double* sp = s.data();
    for (int64_t b = b0; b < b1; ++b) {
      T* cb = state + b * N;
      for (int64_t n = 0; n < N; ++n) c[n] = static_cast<double>(cb[n]);
      const T* fb = f + b * L;
      const T* rb = ratio + b * ratio_bstride;
      T* ob = out_all ? out_all + b * L * N : nullptr;
      for (int64_t k = 0; k < L; ++k) {
        const double fk = static_cast<double>(fb[k]);
        if (k == 0 && init_first) {
          c[0] = fk;
          for (int64_t n = 1; n < N; ++n) c[n] = 0;
        } else {
          const double d = static_cast<double>(rb[k]);
          const double e = al * d, g = (1 - al) * d, df = d * fk;
          double S = 0;  // sum_{j<n} s_j c_j (old state)
          double R = 0;  // sum_{j<n} s_j x_j (new state)
          double m = 0;  // n (exact in double), counted rather than loaded
          for (int64_t n = 0; n < N; ++n) {
            const double cn = c[n], sn = sp[n];
            const double Ac = -sn * S - (m + 1) * cn;
            S += sn * cn;
            const double r = cn + g * Ac + df * sn;
            const double inv = 1 / (1 + e * (m + 1));
            c[n] = (r - e * sn * R) * inv;
            // R_{n+1} = a_n R_n + s_n r_n inv: one multiply-add on the dependency chain.
            R = (1 - e * m) * inv * R + sn * r * inv;
            m += 1;
          }
        }
        if (ob) {
          T* o = ob + k * N;
          for (int64_t n = 0; n < N; ++n) o[n] = static_cast<T>(c[n]);
        }
      }
      for (int64_t n = 0; n < N; ++n) cb[n] = static_cast<T>(c[n]);
    }
  });
}

}  // namespace

extern "C" {

void hippo_legs_project_f64(double* state, const double* f, const double* ratio,
                            int64_t ratio_bstride, double* out_all, int64_t B, int64_t L,
                            int64_t N, double alpha, int init_first) {
  legs_project<double>(state, f, ratio, ratio_bstride, out_all, B, L, N, alpha, init_first);
}

void hippo_legs_project_f32(float* state, const float* f, const float* ratio,
                            int64_t ratio_bstride, float* out_all, int64_t B, int64_t L,
                            int64_t N, double alpha, int init_first) {
  legs_project<float>(state, f, ratio, ratio_bstride, out_all, B, L, N, alpha, init_first);
}

}  // extern "C"
