// One batched HiPPO-LegS GBT step, O(N) per series, forward and backward (for autograd),
// and the per-step gate backward of hippo/nn.py's HiPPO-RNN loop (gate_bwd, at the end).
//
// Plain C entry points over raw contiguous buffers, called via ctypes from hippo/legs.py
// and hippo/nn.py (the autograd.Functions live there); like legs_project.cpp only
// <ATen/Parallel.h> is included (at::parallel_for; serial unless built with OpenMP, see
// hippo/_ext.py) so the build stays short.
// Storage is float32 or float64; the LegS recurrences are evaluated in double for both. With s_n = sqrt(2n+1),
// D = diag(n+1), e = alpha d, g = (1 - alpha) d and M = I - e A:
//
// forward   r = c + g A c + d f s,   A c = -s * exclusive_cumsum(s c) - (n+1) c
//           x = M^-1 r:  x_n = (r_n - e s_n R_n) / (1 + e(n+1)),
//                        R_{n+1} = a_n R_n + s_n r_n / (1 + e(n+1))  (= R_n + s_n x_n),
//           a_n = (1 - e n) / (1 + e(n+1)), |a_n| < 1 for e > 0 (stable).
// backward  y = M^-T gx (upper triangular, same rank-1 structure, reverse recurrence):
//           y_n = (gx_n - e s_n Q_n) / (1 + e(n+1)),  Q_n = sum_{j>n} s_j y_j,
//           Q_{n-1} = a_n Q_n + s_n gx_n / (1 + e(n+1))  (= Q_n + s_n y_n);
//           A^T y = -s * Q - (n+1) y  (Q is exactly the reverse exclusive cumsum of s y);
//           dL/dc = y + g A^T y,  dL/df = d s.y,
//           dL/dd = (A^T y).((1 - alpha) c + alpha x) + f s.y
//           (from dx/dd = M^-1 ((1 - alpha) A c + f s + alpha A x)).
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

// Series are processed in blocks of G, transposed into a local (N, G) buffer, so the inner
// loop runs G independent recurrences side by side (instruction-level parallelism and SIMD
// instead of one latency-bound dependency chain per series). Lanes past B compute on zeros.
// GCC/Clang vector extensions: V is two doubles (one SSE2 register, the x86-64 baseline);
// a block of G = 2 U series runs as U vectors side by side.
typedef double V __attribute__((vector_size(2 * sizeof(double))));
constexpr int64_t U = 4;
constexpr int64_t G = 2 * U;

inline V vload(const double* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}
inline void vstore(double* p, V v) { std::memcpy(p, &v, sizeof(V)); }

std::vector<double> sqrt_odd(int64_t N) {
  std::vector<double> s(N);
  for (int64_t n = 0; n < N; ++n) s[n] = std::sqrt(2.0 * n + 1.0);
  return s;
}

// rows [b, b + m) of src (B, N) -> dst (N, G) transposed, zero lanes past m.
template <typename T>
void load_block(const T* src, int64_t b, int64_t m, int64_t N, double* dst) {
  for (int64_t g = 0; g < G; ++g) {
    if (g < m) {
      const T* row = src + (b + g) * N;
      for (int64_t n = 0; n < N; ++n) dst[n * G + g] = static_cast<double>(row[n]);
    } else {
      for (int64_t n = 0; n < N; ++n) dst[n * G + g] = 0.0;
    }
  }
}

template <typename T>
void store_block(const double* src, int64_t b, int64_t m, int64_t N, T* dst) {
  for (int64_t g = 0; g < m; ++g) {
    T* row = dst + (b + g) * N;
    for (int64_t n = 0; n < N; ++n) row[n] = static_cast<T>(src[n * G + g]);
  }
}

// c, x: (B, N); f: (B,); d: dt_ratio of series b at d[b * d_stride] (d_stride 0: shared).
template <typename T>
void legs_step_fwd(const T* c, const T* f, const double* d, int64_t d_stride, T* x, int64_t B,
                   int64_t N, double alpha) {
  const std::vector<double> s = sqrt_odd(N);
  const int64_t blocks = (B + G - 1) / G;
  at::parallel_for(0, blocks, 1, [&](int64_t k0, int64_t k1) {
    std::vector<double> buf(N * G);
    for (int64_t k = k0; k < k1; ++k) {
      const int64_t b = k * G, m = std::min(G, B - b);
      V e[U]{}, gm[U]{}, df[U]{};
      for (int64_t g = 0; g < m; ++g) {
        const double db = d[(b + g) * d_stride];
        e[g / 2][g % 2] = alpha * db;
        gm[g / 2][g % 2] = (1.0 - alpha) * db;
        df[g / 2][g % 2] = db * static_cast<double>(f[b + g]);
      }
      V S[U]{};  // sum_{j<n} s_j c_j
      V R[U]{};  // sum_{j<n} s_j x_j
      load_block(c, b, m, N, buf.data());
      for (int64_t n = 0; n < N; ++n) {
        const double sn = s[n], np1 = static_cast<double>(n + 1);
        double* p = buf.data() + n * G;  // c_n in, x_n out
        for (int64_t u = 0; u < U; ++u) {
          const V cn = vload(p + 2 * u);
          const V Ac = -sn * S[u] - np1 * cn;
          S[u] += sn * cn;
          const V r = cn + gm[u] * Ac + df[u] * sn;
          const V inv = 1.0 / (1.0 + e[u] * np1);
          vstore(p + 2 * u, (r - e[u] * sn * R[u]) * inv);
          R[u] = (1.0 - e[u] * (np1 - 1.0)) * inv * R[u] + sn * r * inv;
        }
      }
      store_block(buf.data(), b, m, N, x);
    }
  });
}

// gx, c, x: (B, N); f: (B,); d as above. Outputs gc (B, N), gf (B,), gd (B,) or nullptr
// (c and x are only read for gd and may be nullptr without it).
template <typename T>
void legs_step_bwd(const T* gx, const T* c, const T* x, const T* f, const double* d,
                   int64_t d_stride, T* gc, T* gf, double* gd, int64_t B, int64_t N,
                   double alpha) {
  const std::vector<double> s = sqrt_odd(N);
  const int64_t blocks = (B + G - 1) / G;
  at::parallel_for(0, blocks, 1, [&](int64_t k0, int64_t k1) {
    std::vector<double> buf(N * G), mix(gd ? N * G : 0), xt(gd ? N * G : 0);
    for (int64_t k = k0; k < k1; ++k) {
      const int64_t b = k * G, m = std::min(G, B - b);
      V e[U]{}, gm[U]{};
      for (int64_t g = 0; g < m; ++g) {
        const double db = d[(b + g) * d_stride];
        e[g / 2][g % 2] = alpha * db;
        gm[g / 2][g % 2] = (1.0 - alpha) * db;
      }
      V Q[U]{};    // sum_{j>n} s_j y_j
      V acc[U]{};  // (A^T y) . ((1 - alpha) c + alpha x)
      load_block(gx, b, m, N, buf.data());
      if (gd) {  // mix = (1 - alpha) c + alpha x
        load_block(c, b, m, N, mix.data());
        load_block(x, b, m, N, xt.data());
        for (int64_t i = 0; i < N * G; ++i) mix[i] = (1.0 - alpha) * mix[i] + alpha * xt[i];
      }
      for (int64_t n = N - 1; n >= 0; --n) {
        const double sn = s[n], np1 = static_cast<double>(n + 1);
        double* p = buf.data() + n * G;  // gx_n in, gc_n out
        for (int64_t u = 0; u < U; ++u) {
          const V gn = vload(p + 2 * u);
          const V inv = 1.0 / (1.0 + e[u] * np1);
          const V y = (gn - e[u] * sn * Q[u]) * inv;
          const V ATy = -sn * Q[u] - np1 * y;
          vstore(p + 2 * u, y + gm[u] * ATy);
          Q[u] = (1.0 - e[u] * (np1 - 1.0)) * inv * Q[u] + sn * gn * inv;
          if (gd) acc[u] += ATy * vload(mix.data() + n * G + 2 * u);
        }
      }
      store_block(buf.data(), b, m, N, gc);
      for (int64_t g = 0; g < m; ++g) {
        const double db = d[(b + g) * d_stride];
        gf[b + g] = static_cast<T>(db * Q[g / 2][g % 2]);
        if (gd) gd[b + g] = acc[g / 2][g % 2] + static_cast<double>(f[b + g]) * Q[g / 2][g % 2];
      }
    }
  });
}

// Backward of the HiPPO-RNN gate h = lerp(h_prev, t, s) = h_prev + s (t - h_prev),
// t = tanh(a), s = sigmoid(g), for one step of hippo/nn.py's _LegsKernelLoop, element-wise
// over (B, H) rows (the derivative factors are formed here instead of as whole-sequence
// temporaries): with G = gh + ghs + du @ u_h (gradient reaching h_k: carried from step k+1,
// from the output, and through u_{k+1} = ... + u_h h_k),
//   dz[:, :H] = G s (1 - t^2),  dz[:, H:] = G (t - h_prev) s (1 - s),  gh <- G (1 - s).
// act (B, 2H) holds [t, s] per row; gh, h_prev (B, H); dz (B, 2H). ghs (row stride
// ghs_stride), du (B, M) with u_h (M, H), and h_prev may be nullptr (zero).
template <typename T>
void gate_bwd(T* gh, const T* ghs, int64_t ghs_stride, const T* du, const T* u_h, int64_t M,
              const T* act, const T* hprev, T* dz, int64_t B, int64_t H) {
  // ATen's grain (32768 elements): one step of a typical batch is too little work to split.
  at::parallel_for(0, B, std::max<int64_t>(1, 32768 / std::max<int64_t>(H, 1)),
                   [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      T* __restrict__ g = gh + b * H;
      const T* __restrict__ t = act + b * 2 * H;
      const T* __restrict__ s = t + H;
      T* __restrict__ da = dz + b * 2 * H;
      T* __restrict__ dg = da + H;
      if (ghs) {
        const T* __restrict__ o = ghs + b * ghs_stride;
        for (int64_t i = 0; i < H; ++i) g[i] += o[i];
      }
      if (du) {
        for (int64_t m = 0; m < M; ++m) {
          const T w = du[b * M + m];
          const T* __restrict__ r = u_h + m * H;
          for (int64_t i = 0; i < H; ++i) g[i] += w * r[i];
        }
      }
      if (hprev) {
        const T* __restrict__ hp = hprev + b * H;
        for (int64_t i = 0; i < H; ++i) {
          const T gs = g[i] * s[i];
          da[i] = gs * (T(1) - t[i] * t[i]);
          dg[i] = gs * (t[i] - hp[i]) * (T(1) - s[i]);
          g[i] -= gs;
        }
      } else {
        for (int64_t i = 0; i < H; ++i) {
          const T gs = g[i] * s[i];
          da[i] = gs * (T(1) - t[i] * t[i]);
          dg[i] = gs * t[i] * (T(1) - s[i]);
          g[i] -= gs;
        }
      }
    }
  });
}

}  // namespace

extern "C" {

void hippo_legs_step_f64(const double* c, const double* f, const double* d, int64_t d_stride,
                         double* x, int64_t B, int64_t N, double alpha) {
  legs_step_fwd<double>(c, f, d, d_stride, x, B, N, alpha);
}

void hippo_legs_step_f32(const float* c, const float* f, const double* d, int64_t d_stride,
                         float* x, int64_t B, int64_t N, double alpha) {
  legs_step_fwd<float>(c, f, d, d_stride, x, B, N, alpha);
}

void hippo_legs_step_bwd_f64(const double* gx, const double* c, const double* x,
                             const double* f, const double* d, int64_t d_stride, double* gc,
                             double* gf, double* gd, int64_t B, int64_t N, double alpha) {
  legs_step_bwd<double>(gx, c, x, f, d, d_stride, gc, gf, gd, B, N, alpha);
}

void hippo_legs_step_bwd_f32(const float* gx, const float* c, const float* x, const float* f,
                             const double* d, int64_t d_stride, float* gc, float* gf,
                             double* gd, int64_t B, int64_t N, double alpha) {
  legs_step_bwd<float>(gx, c, x, f, d, d_stride, gc, gf, gd, B, N, alpha);
}

void hippo_gate_bwd_f64(double* gh, const double* ghs, int64_t ghs_stride, const double* du,
                        const double* u_h, int64_t M, const double* act, const double* hprev,
                        double* dz, int64_t B, int64_t H) {
  gate_bwd<double>(gh, ghs, ghs_stride, du, u_h, M, act, hprev, dz, B, H);
}

void hippo_gate_bwd_f32(float* gh, const float* ghs, int64_t ghs_stride, const float* du,
                        const float* u_h, int64_t M, const float* act, const float* hprev,
                        float* dz, int64_t B, int64_t H) {
  gate_bwd<float>(gh, ghs, ghs_stride, du, u_h, M, act, hprev, dz, B, H);
}

}  // extern "C"
