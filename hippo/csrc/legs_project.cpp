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
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace {

// state: (B, N) in/out. f: (B, L). ratio: dt_ratio per (b, k) with row stride ratio_bstride
// (0 when the batch shares it). init_first: element 0 sets c = (f_0, 0, ..., 0) (t = 0).
// out_all: (B, L, N) or nullptr.
template <typename T>
void legs_project(T* state, const T* f, const T* ratio, int64_t ratio_bstride, T* out_all,
                  int64_t B, int64_t L, int64_t N, double alpha, int init_first) {
  std::vector<T> s(N), np1(N);
  for (int64_t n = 0; n < N; ++n) {
    s[n] = static_cast<T>(std::sqrt(2.0 * n + 1.0));
    np1[n] = static_cast<T>(n + 1);
  }
  const T al = static_cast<T>(alpha);
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      T* c = state + b * N;
      const T* fb = f + b * L;
      const T* rb = ratio + b * ratio_bstride;
      T* ob = out_all ? out_all + b * L * N : nullptr;
      for (int64_t k = 0; k < L; ++k) {
        const T fk = fb[k];
        if (k == 0 && init_first) {
          c[0] = fk;
          for (int64_t n = 1; n < N; ++n) c[n] = 0;
        } else {
          const T d = rb[k];
          const T e = al * d, g = (1 - al) * d, df = d * fk;
          T S = 0;  // sum_{j<n} s_j c_j (old state)
          T R = 0;  // sum_{j<n} s_j x_j (new state)
          for (int64_t n = 0; n < N; ++n) {
            const T cn = c[n], sn = s[n];
            const T Ac = -sn * S - np1[n] * cn;
            S += sn * cn;
            const T r = cn + g * Ac + df * sn;
            const T inv = 1 / (1 + e * np1[n]);
            c[n] = (r - e * sn * R) * inv;
            // R_{n+1} = a_n R_n + s_n r_n inv: one multiply-add on the dependency chain.
            R = (1 - e * (np1[n] - 1)) * inv * R + sn * r * inv;
          }
        }
        if (ob) {
          T* o = ob + k * N;
          for (int64_t n = 0; n < N; ++n) o[n] = c[n];
        }
      }
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
