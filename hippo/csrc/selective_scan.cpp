// Mamba's selective scan (hippo/scan.py, mode "compiled"), forward and backward, on CPU.
//
// Per series (b, d), state n and step k (A (D, N); u, delta (Bt, D, L); B, C given here
// step-major, (Bt, L, N)):
//
//   a_k = exp(delta_k A_n),  b_k = delta_k u_k B_kn  (zoh_b: times phi(delta_k A_n),
//                                                     phi(z) = (e^z - 1) / z)
//   x_k = a_k x_{k-1} + b_k,  y_k = sum_n C_kn x_k     (x_{-1} = x0)
//
// One (b, d) at a time: its N states stay in registers (N is a template constant for the
// usual sizes), the decays and inputs of a chunk of T steps are computed first in one
// vectorised loop (the exps do not depend on the state), then the recurrence runs over them.
// The forward keeps only the state at the start of every chunk, (Bt, D, ceil(L / T), N);
// the backward recomputes a chunk's states from it, then runs the adjoint through the chunk
// in reverse:
//
//   g_k = C_k gy_k + a_{k+1} g_{k+1}  (+ g_last at k = L - 1)    dL/dx_k
//   dL/d(dA_kn) = g_kn x_{k-1,n} a_kn  (+ zoh_b: g_kn delta u B_kn phi'(dA_kn))
//   dL/d(du)_k  = sum_n g_kn B_kn (phi_kn)   (du = delta u)
//   dL/du_k = delta_k dL/d(du)_k,  dL/d(delta)_k = sum_n dL/d(dA_kn) A_n + u_k dL/d(du)_k
//   dL/dA_n = sum_k dL/d(dA_kn) delta_k,  dL/dB_kn = g_kn (phi_kn) du_k,  dL/dC_kn = gy_k x_kn
//   dL/dx0 = a_0 g_0.
//
// dL/dB and dL/dC sum over d, so one b's channels run in order on one thread; dL/dA sums over
// b: each b writes its own (D, N) part, summed by the caller (over k it sums in T within a
// chunk and in double across chunks). exp is a polynomial with
// range reduction (Cephes' expf in float32, a degree-13 Taylor series in float64: below
// 2 ulp) written in plain arithmetic so that the compiler vectorises it over n; phi and phi'
// use their Taylor series below |z| = 1/2 (where e^z - 1 cancels), the closed forms above.
// On x86-64 (GCC, Clang) the kernels are also compiled for AVX2 + FMA and for AVX-512 and
// picked by what the CPU supports (the build itself passes no -march); elsewhere the
// compiler's baseline. Like the LegS kernels, only
// <ATen/Parallel.h> is included; the range over b goes through at::parallel_for (serial in
// this build, see hippo/_ext.py).
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__GNUC__) && defined(__x86_64__)
#define HIPPO_X86 1
#define HIPPO_V4 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"), flatten))
#define HIPPO_V3 __attribute__((target("avx2,fma"), flatten))
#else
#define HIPPO_X86 0
#endif

namespace {

#ifndef __has_builtin
#define __has_builtin(x) 0
#endif

template <typename To, typename From>
inline To bits(From v) {
#if __has_builtin(__builtin_bit_cast)
  return __builtin_bit_cast(To, v);
#else
  To out;
  std::memcpy(&out, &v, sizeof(To));
  return out;
#endif
}

// exp with range reduction x = n ln2 + r, |r| <= ln2 / 2; 0 below, inf above the range.
inline float vexp(float x) {
  const float xc = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float t = xc * 1.44269504088896341f + 12582912.0f;  // 1.5 * 2^23: rounds to an integer
  const float n = t - 12582912.0f;
  const float r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t e = (bits<int32_t>(t) - 0x4B400000 + 127) << 23;
  float res = p * bits<float>(e);
  res = x < -87.0f ? 0.0f : res;
  res = x > 88.0f ? std::numeric_limits<float>::infinity() : res;
  return x != x ? x : res;
}

inline double vexp(double x) {
  const double xc = x < -708.0 ? -708.0 : (x > 709.0 ? 709.0 : x);
  const double t = xc * 1.4426950408889634 + 6755399441055744.0;  // 1.5 * 2^52
  const double n = t - 6755399441055744.0;
  const double r = (xc - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
  double p = 1.0 / 6227020800.0;  // 1/13!
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  const int64_t e = (bits<int64_t>(t) - int64_t(0x4338000000000000) + 1023) << 52;
  double res = p * bits<double>(e);
  res = x < -708.0 ? 0.0 : res;
  res = x > 709.0 ? std::numeric_limits<double>::infinity() : res;
  return x != x ? x : res;
}

// Taylor terms of phi (sum z^k / (k+1)!) and phi' (sum k z^(k-1) / (k+1)!) below |z| = 1/2:
// the first omitted term is under 2^-24 (float) / 2^-53 (double) relative.
template <typename T>
constexpr int kTerms = sizeof(T) == 4 ? 9 : 16;

template <typename T>
struct PhiSeries {  // c_k = 1 / (k+1)!, k = 0 .. kTerms
  T c[kTerms<T> + 1];
  constexpr PhiSeries() : c() {
    T f = T(1);
    for (int k = 0; k <= kTerms<T>; ++k) {
      f *= T(k + 1);
      c[k] = T(1) / f;
    }
  }
};

template <typename T>
inline T phi_of(T z, T ez) {  // (e^z - 1) / z given e^z
  constexpr PhiSeries<T> ser;
  T s = T(0);
  for (int k = kTerms<T>; k >= 0; --k) s = s * z + ser.c[k];
  const bool small = z < T(0.5) && z > T(-0.5);
  return small ? s : (ez - T(1)) / (small ? T(1) : z);
}

template <typename T>
struct DphiSeries {  // c_k = k / (k+1)!, k = 1 .. kTerms + 1
  T c[kTerms<T> + 2];
  constexpr DphiSeries() : c() {
    T f = T(1);
    for (int k = 1; k <= kTerms<T> + 1; ++k) {
      f *= T(k + 1);
      c[k] = T(k) / f;
    }
  }
};

template <typename T>
inline T dphi_of(T z, T ez, T ph) {  // phi'(z) = (e^z - phi(z)) / z
  constexpr DphiSeries<T> ser;
  T s = T(0);
  for (int k = kTerms<T> + 1; k >= 1; --k) s = s * z + ser.c[k];
  const bool small = z < T(0.5) && z > T(-0.5);
  return small ? s : (ez - ph) / (small ? T(1) : z);
}

// sum of v[0 .. N): a pairwise tree when N is a power of two (vector adds of halves, no
// serial chain of N dependent adds), else in order. Overwrites v.
template <typename T, int NC>
inline T tree_sum(T* v, int64_t N) {
  if (NC > 0 && (NC & (NC - 1)) == 0) {
#pragma GCC unroll 8
    for (int w = NC / 2; w >= 1; w /= 2) {
#pragma GCC unroll 64
      for (int n = 0; n < w; ++n) v[n] += v[n + w];
    }
    return v[0];
  }
  T s = T(0);
  for (int64_t n = 0; n < N; ++n) s += v[n];
  return s;
}

template <typename T>
struct Sizes {
  int64_t Bt, D, L, N, T_;
};

// Decays and inputs of steps [s, e) of series (b, d): a, inp, ph (zoh_b) (e - s, N).
template <typename T, int NC>
inline void chunk_terms(const T* delta, const T* u, const T* A, const T* Bm, int64_t s,
                        int64_t e, int64_t N_, bool zoh, T* a, T* inp, T* ph) {
  const int64_t N = NC ? NC : N_;
  for (int64_t k = s; k < e; ++k) {
    const T dt = delta[k], du = dt * u[k];
    const T* Bk = Bm + k * N;
    T* ak = a + (k - s) * N;
    T* ik = inp + (k - s) * N;
    if (zoh) {
      T* pk = ph + (k - s) * N;
      for (int64_t n = 0; n < N; ++n) {
        const T z = dt * A[n];
        const T ez = vexp(z);
        const T p = phi_of(z, ez);
        ak[n] = ez;
        pk[n] = p;
        ik[n] = du * Bk[n] * p;
      }
    } else {
      for (int64_t n = 0; n < N; ++n) {
        ak[n] = vexp(dt * A[n]);
        ik[n] = du * Bk[n];
      }
    }
  }
}

template <typename T, int NC>
void fwd_range(int64_t b0, int64_t b1, const T* u, const T* delta, const T* A, const T* Bm,
               const T* Cm, const T* x0, T* y, T* x_last, T* xs, const Sizes<T>& sz, bool zoh) {
  const int64_t D = sz.D, L = sz.L, N = NC ? NC : sz.N, TT = sz.T_;
  const int64_t nC = (L + TT - 1) / TT;
  std::vector<T> abuf(TT * N), ibuf(TT * N), pbuf(zoh ? TT * N : 0);
  T xl[NC ? NC : 1], pl[NC ? NC : 1];
  std::vector<T> xv(NC ? 0 : N), pv(NC ? 0 : N);
  T* x = NC ? xl : xv.data();
  T* prod = NC ? pl : pv.data();
  for (int64_t b = b0; b < b1; ++b) {
    const T* Bb = Bm + b * L * N;
    const T* Cb = Cm + b * L * N;
    for (int64_t d = 0; d < D; ++d) {
      const int64_t bd = b * D + d;
      const T* ud = u + bd * L;
      const T* dd = delta + bd * L;
      const T* Ad = A + d * N;
      T* yd = y + bd * L;
      for (int64_t n = 0; n < N; ++n) x[n] = x0[bd * N + n];
      for (int64_t c = 0; c < nC; ++c) {
        const int64_t s = c * TT, e = std::min(L, s + TT);
        if (xs) std::memcpy(xs + (bd * nC + c) * N, x, N * sizeof(T));
        chunk_terms<T, NC>(dd, ud, Ad, Bb, s, e, N, zoh, abuf.data(), ibuf.data(), pbuf.data());
        for (int64_t k = s; k < e; ++k) {
          const T* ak = abuf.data() + (k - s) * N;
          const T* ik = ibuf.data() + (k - s) * N;
          const T* Ck = Cb + k * N;
          for (int64_t n = 0; n < N; ++n) {
            x[n] = ak[n] * x[n] + ik[n];
            prod[n] = Ck[n] * x[n];
          }
          yd[k] = tree_sum<T, NC>(prod, N);
        }
      }
      std::memcpy(x_last + bd * N, x, N * sizeof(T));
    }
  }
}

// Gradients: gu, gdelta (Bt, D, L); gA_part (Bt, D, N); gB, gC (Bt, L, N), zeroed by the
// caller and accumulated over d; gx0 (Bt, D, N). g_last (Bt, D, N) or nullptr.
template <typename T, int NC>
void bwd_range(int64_t b0, int64_t b1, const T* u, const T* delta, const T* A, const T* Bm,
               const T* Cm, const T* xs, const T* gy, const T* g_last, T* gu, T* gdelta,
               T* gA_part, T* gB, T* gC, T* gx0, const Sizes<T>& sz, bool zoh) {
  const int64_t D = sz.D, L = sz.L, N = NC ? NC : sz.N, TT = sz.T_;
  const int64_t nC = (L + TT - 1) / TT;
  std::vector<T> abuf(TT * N), ibuf(TT * N), pbuf(zoh ? TT * N : 0), xbuf((TT + 1) * N);
  T gl[NC ? NC : 1], gal[NC ? NC : 1], xl[NC ? NC : 1], p1l[NC ? NC : 1], p2l[NC ? NC : 1];
  std::vector<T> gv(NC ? 0 : N), gav(NC ? 0 : N), xv(NC ? 0 : N), p1v(NC ? 0 : N),
      p2v(NC ? 0 : N);
  std::vector<double> gAtot(N);  // dL/dA over chunks in double (within one: T)
  T* p_dA = NC ? p1l : p1v.data();
  T* p_du = NC ? p2l : p2v.data();
  T* g = NC ? gl : gv.data();
  T* gAacc = NC ? gal : gav.data();
  T* x = NC ? xl : xv.data();
  for (int64_t b = b0; b < b1; ++b) {
    const T* Bb = Bm + b * L * N;
    const T* Cb = Cm + b * L * N;
    T* gBb = gB + b * L * N;
    T* gCb = gC + b * L * N;
    for (int64_t d = 0; d < D; ++d) {
      const int64_t bd = b * D + d;
      const T* ud = u + bd * L;
      const T* dd = delta + bd * L;
      const T* gyd = gy + bd * L;
      const T* Ad = A + d * N;
      for (int64_t n = 0; n < N; ++n) {
        g[n] = g_last ? g_last[bd * N + n] : T(0);
        gAtot[n] = 0.0;
      }
      for (int64_t c = nC - 1; c >= 0; --c) {
        const int64_t s = c * TT, e = std::min(L, s + TT);
        for (int64_t n = 0; n < N; ++n) gAacc[n] = T(0);
        chunk_terms<T, NC>(dd, ud, Ad, Bb, s, e, N, zoh, abuf.data(), ibuf.data(), pbuf.data());
        // states: xbuf row j = x_{s + j - 1} (row 0: the chunk's start state)
        for (int64_t n = 0; n < N; ++n) x[n] = xs[(bd * nC + c) * N + n];
        std::memcpy(xbuf.data(), x, N * sizeof(T));
        for (int64_t k = s; k < e; ++k) {
          const T* ak = abuf.data() + (k - s) * N;
          const T* ik = ibuf.data() + (k - s) * N;
          T* xk = xbuf.data() + (k - s + 1) * N;
          for (int64_t n = 0; n < N; ++n) {
            x[n] = ak[n] * x[n] + ik[n];
            xk[n] = x[n];
          }
        }
        for (int64_t k = e - 1; k >= s; --k) {
          const T* ak = abuf.data() + (k - s) * N;
          const T* xprev = xbuf.data() + (k - s) * N;
          const T* xk = xprev + N;
          const T* Ck = Cb + k * N;
          const T* Bk = Bb + k * N;
          T* gBk = gBb + k * N;
          T* gCk = gCb + k * N;
          const T gyk = gyd[k], dt = dd[k], uk = ud[k], du = dt * uk;
          if (zoh) {
            const T* pk = pbuf.data() + (k - s) * N;
            for (int64_t n = 0; n < N; ++n) {
              const T gn = g[n] + Ck[n] * gyk;
              gCk[n] += gyk * xk[n];
              const T z = dt * Ad[n];
              const T raw = du * Bk[n];
              const T gdA = gn * xprev[n] * ak[n] + gn * raw * dphi_of(z, ak[n], pk[n]);
              const T gb = gn * pk[n];
              p_du[n] = gb * Bk[n];
              gBk[n] += gb * du;
              p_dA[n] = gdA * Ad[n];
              gAacc[n] += gdA * dt;
              g[n] = ak[n] * gn;
            }
          } else {
            for (int64_t n = 0; n < N; ++n) {
              const T gn = g[n] + Ck[n] * gyk;
              gCk[n] += gyk * xk[n];
              const T gdA = gn * xprev[n] * ak[n];
              p_du[n] = gn * Bk[n];
              gBk[n] += gn * du;
              p_dA[n] = gdA * Ad[n];
              gAacc[n] += gdA * dt;
              g[n] = ak[n] * gn;
            }
          }
          const T s_du = tree_sum<T, NC>(p_du, N), s_dA = tree_sum<T, NC>(p_dA, N);
          gu[bd * L + k] = s_du * dt;
          gdelta[bd * L + k] = s_dA + s_du * uk;
        }
        for (int64_t n = 0; n < N; ++n) gAtot[n] += gAacc[n];
      }
      std::memcpy(gx0 + bd * N, g, N * sizeof(T));
      for (int64_t n = 0; n < N; ++n) gA_part[bd * N + n] = static_cast<T>(gAtot[n]);
    }
  }
}

// ---- the vector path: N a multiple of one 64-byte vector (16 floats, 8 doubles) -----------
// The same arithmetic on GCC/Clang vector types, so that the state is NV vector registers
// (the compiler splits a 64-byte vector into two or four where the ISA is narrower) and the
// sums over n are a shuffle tree.
typedef float F16 __attribute__((vector_size(64)));
typedef float F8 __attribute__((vector_size(32)));
typedef float F4 __attribute__((vector_size(16)));
typedef int32_t I16 __attribute__((vector_size(64)));
typedef double D8 __attribute__((vector_size(64)));
typedef double D4 __attribute__((vector_size(32)));
typedef double D2 __attribute__((vector_size(16)));
typedef int64_t I8 __attribute__((vector_size(64)));

template <typename T>
struct Vec;
template <>
struct Vec<float> {
  typedef F16 V;
  static constexpr int W = 16;
};
template <>
struct Vec<double> {
  typedef D8 V;
  static constexpr int W = 8;
};

template <typename V>
inline V vload(const void* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}
template <typename V>
inline void vstore(void* p, V v) {
  std::memcpy(p, &v, sizeof(V));
}

#if defined(__clang__) || __GNUC__ >= 12
inline float hsum(F16 v) {
  const F8 a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
               __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  const F4 b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
  return (b[0] + b[2]) + (b[1] + b[3]);
}
inline double hsum(D8 v) {
  const D4 a = __builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7);
  const D2 b = __builtin_shufflevector(a, a, 0, 1) + __builtin_shufflevector(a, a, 2, 3);
  return b[0] + b[1];
}
#else  // no __builtin_shufflevector before GCC 12: the same tree on lanes
inline float hsum(F16 v) {
  float a[8];
  for (int i = 0; i < 8; ++i) a[i] = v[i] + v[i + 8];
  for (int i = 0; i < 4; ++i) a[i] += a[i + 4];
  return (a[0] + a[2]) + (a[1] + a[3]);
}
inline double hsum(D8 v) {
  double a[4];
  for (int i = 0; i < 4; ++i) a[i] = v[i] + v[i + 4];
  return (a[0] + a[2]) + (a[1] + a[3]);
}
#endif

inline F16 vexp(F16 x) {  // vexp(float), lane by lane
  const F16 xc = x < -87.0f ? (F16){} - 87.0f : (x > 88.0f ? (F16){} + 88.0f : x);
  const F16 t = xc * 1.44269504088896341f + 12582912.0f;
  const F16 n = t - 12582912.0f;
  const F16 r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;
  F16 p = (F16){} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const I16 e = ((I16)t - 0x4B400000 + 127) << 23;
  F16 res = p * (F16)e;
  res = x < -87.0f ? (F16){} : res;
  res = x > 88.0f ? (F16){} + std::numeric_limits<float>::infinity() : res;
  return x != x ? x : res;
}

inline D8 vexp(D8 x) {  // vexp(double), lane by lane
  const D8 xc = x < -708.0 ? (D8){} - 708.0 : (x > 709.0 ? (D8){} + 709.0 : x);
  const D8 t = xc * 1.4426950408889634 + 6755399441055744.0;
  const D8 n = t - 6755399441055744.0;
  const D8 r = (xc - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
  D8 p = (D8){} + 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  const I8 e = ((I8)t - int64_t(0x4338000000000000) + 1023) << 52;
  D8 res = p * (D8)e;
  res = x < -708.0 ? (D8){} : res;
  res = x > 709.0 ? (D8){} + std::numeric_limits<double>::infinity() : res;
  return x != x ? x : res;
}

template <typename T, typename V>
inline V vphi(V z, V ez) {  // phi_of, lane by lane
  constexpr PhiSeries<T> ser;
  V s = (V){};
  for (int k = kTerms<T>; k >= 0; --k) s = s * z + ser.c[k];
  // |z| < 1/2 as one comparison (a compound mask is selected lane by lane, not blended)
  const V zz = z * z, one = (V){} + T(1);
  const V closed = (ez - T(1)) / (zz < T(0.25) ? one : z);
  return zz < T(0.25) ? s : closed;
}

template <typename T, typename V>
inline V vdphi(V z, V ez, V ph) {  // dphi_of, lane by lane
  constexpr DphiSeries<T> ser;
  V s = (V){};
  for (int k = kTerms<T> + 1; k >= 1; --k) s = s * z + ser.c[k];
  const V zz = z * z, one = (V){} + T(1);
  const V closed = (ez - ph) / (zz < T(0.25) ? one : z);
  return zz < T(0.25) ? s : closed;
}

// chunk_terms on vectors: a, inp, ph (e - s, N). (Buffers are plain T arrays read and
// written unaligned: a std::vector of a vector type would drop its alignment.)
template <typename T, int NV>
inline void vchunk_terms(const T* delta, const T* u, const typename Vec<T>::V* A, const T* Bm,
                         int64_t s, int64_t e, bool zoh, T* a, T* inp, T* ph) {
  typedef typename Vec<T>::V V;
  constexpr int64_t N = NV * Vec<T>::W;
  for (int64_t k = s; k < e; ++k) {
    const T dt = delta[k], du = dt * u[k];
    const T* Bk = Bm + k * N;
    T* ak = a + (k - s) * N;
    T* ik = inp + (k - s) * N;
    if (zoh) {
      T* pk = ph + (k - s) * N;
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) {
        const V z = dt * A[j];
        const V ez = vexp(z);
        const V p = vphi<T>(z, ez);
        vstore(ak + j * Vec<T>::W, ez);
        vstore(pk + j * Vec<T>::W, p);
        vstore(ik + j * Vec<T>::W, du * vload<V>(Bk + j * Vec<T>::W) * p);
      }
    } else {
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) {
        vstore(ak + j * Vec<T>::W, vexp(dt * A[j]));
        vstore(ik + j * Vec<T>::W, du * vload<V>(Bk + j * Vec<T>::W));
      }
    }
  }
}

template <typename T, int NV>
void vfwd_range(int64_t b0, int64_t b1, const T* u, const T* delta, const T* A, const T* Bm,
                const T* Cm, const T* x0, T* y, T* x_last, T* xs, const Sizes<T>& sz,
                bool zoh) {
  typedef typename Vec<T>::V V;
  constexpr int W = Vec<T>::W;
  constexpr int64_t N = NV * W;
  const int64_t D = sz.D, L = sz.L, TT = sz.T_;
  const int64_t nC = (L + TT - 1) / TT;
  std::vector<T> abuf(TT * N), ibuf(TT * N), pbuf(zoh ? TT * N : 0);
  for (int64_t b = b0; b < b1; ++b) {
    const T* Bb = Bm + b * L * N;
    const T* Cb = Cm + b * L * N;
    for (int64_t d = 0; d < D; ++d) {
      const int64_t bd = b * D + d;
      const T* ud = u + bd * L;
      const T* dd = delta + bd * L;
      T* yd = y + bd * L;
      V Ad[NV], x[NV];
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) {
        Ad[j] = vload<V>(A + d * N + j * W);
        x[j] = vload<V>(x0 + bd * N + j * W);
      }
      for (int64_t c = 0; c < nC; ++c) {
        const int64_t s = c * TT, e = std::min(L, s + TT);
        if (xs) {
#pragma GCC unroll 8
          for (int j = 0; j < NV; ++j) vstore(xs + (bd * nC + c) * N + j * W, x[j]);
        }
        vchunk_terms<T, NV>(dd, ud, Ad, Bb, s, e, zoh, abuf.data(), ibuf.data(), pbuf.data());
        for (int64_t k = s; k < e; ++k) {
          const T* ak = abuf.data() + (k - s) * N;
          const T* ik = ibuf.data() + (k - s) * N;
          const T* Ck = Cb + k * N;
          V acc = (V){};
#pragma GCC unroll 8
          for (int j = 0; j < NV; ++j) {
            x[j] = vload<V>(ak + j * W) * x[j] + vload<V>(ik + j * W);
            acc += vload<V>(Ck + j * W) * x[j];
          }
          yd[k] = hsum(acc);
        }
      }
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) vstore(x_last + bd * N + j * W, x[j]);
    }
  }
}

template <typename T, int NV>
void vbwd_range(int64_t b0, int64_t b1, const T* u, const T* delta, const T* A, const T* Bm,
                const T* Cm, const T* xs, const T* gy, const T* g_last, T* gu, T* gdelta,
                T* gA_part, T* gB, T* gC, T* gx0, const Sizes<T>& sz, bool zoh) {
  typedef typename Vec<T>::V V;
  constexpr int W = Vec<T>::W;
  constexpr int64_t N = NV * W;
  const int64_t D = sz.D, L = sz.L, TT = sz.T_;
  const int64_t nC = (L + TT - 1) / TT;
  std::vector<T> abuf(TT * N), ibuf(TT * N), pbuf(zoh ? TT * N : 0), xbuf((TT + 1) * N);
  double gAtot[N];  // dL/dA over chunks in double (within one: T)
  for (int64_t b = b0; b < b1; ++b) {
    const T* Bb = Bm + b * L * N;
    const T* Cb = Cm + b * L * N;
    T* gBb = gB + b * L * N;
    T* gCb = gC + b * L * N;
    for (int64_t d = 0; d < D; ++d) {
      const int64_t bd = b * D + d;
      const T* ud = u + bd * L;
      const T* dd = delta + bd * L;
      const T* gyd = gy + bd * L;
      V Ad[NV], g[NV], gA[NV];
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) {
        Ad[j] = vload<V>(A + d * N + j * W);
        g[j] = g_last ? vload<V>(g_last + bd * N + j * W) : (V){};
      }
      for (int64_t n = 0; n < N; ++n) gAtot[n] = 0.0;
      for (int64_t c = nC - 1; c >= 0; --c) {
        const int64_t s = c * TT, e = std::min(L, s + TT);
#pragma GCC unroll 8
        for (int j = 0; j < NV; ++j) gA[j] = (V){};
        vchunk_terms<T, NV>(dd, ud, Ad, Bb, s, e, zoh, abuf.data(), ibuf.data(), pbuf.data());
        {  // states: xbuf row i = x_{s + i - 1} (row 0: the chunk's start state)
          V x[NV];
#pragma GCC unroll 8
          for (int j = 0; j < NV; ++j) {
            x[j] = vload<V>(xs + (bd * nC + c) * N + j * W);
            vstore(xbuf.data() + j * W, x[j]);
          }
          for (int64_t k = s; k < e; ++k) {
            const T* ak = abuf.data() + (k - s) * N;
            const T* ik = ibuf.data() + (k - s) * N;
            T* xk = xbuf.data() + (k - s + 1) * N;
#pragma GCC unroll 8
            for (int j = 0; j < NV; ++j) {
              x[j] = vload<V>(ak + j * W) * x[j] + vload<V>(ik + j * W);
              vstore(xk + j * W, x[j]);
            }
          }
        }
        for (int64_t k = e - 1; k >= s; --k) {
          const T* ak = abuf.data() + (k - s) * N;
          const T* pk = pbuf.data() + (zoh ? (k - s) * N : 0);
          const T* xprev = xbuf.data() + (k - s) * N;
          const T* xk = xprev + N;
          const T* Ck = Cb + k * N;
          const T* Bk = Bb + k * N;
          T* gBk = gBb + k * N;
          T* gCk = gCb + k * N;
          const T gyk = gyd[k], dt = dd[k], uk = ud[k], du = dt * uk;
          V s_du = (V){}, s_dA = (V){};
#pragma GCC unroll 8
          for (int j = 0; j < NV; ++j) {
            const V Bj = vload<V>(Bk + j * W), aj = vload<V>(ak + j * W);
            const V gn = g[j] + vload<V>(Ck + j * W) * gyk;
            vstore(gCk + j * W, vload<V>(gCk + j * W) + gyk * vload<V>(xk + j * W));
            V gdA = gn * vload<V>(xprev + j * W) * aj;
            V gb = gn;
            if (zoh) {
              const V pj = vload<V>(pk + j * W);
              gdA += gn * (du * Bj) * vdphi<T>(dt * Ad[j], aj, pj);
              gb = gn * pj;
            }
            s_du += gb * Bj;
            vstore(gBk + j * W, vload<V>(gBk + j * W) + gb * du);
            s_dA += gdA * Ad[j];
            gA[j] += gdA * dt;
            g[j] = aj * gn;
          }
          const T sdu = hsum(s_du);
          gu[bd * L + k] = sdu * dt;
          gdelta[bd * L + k] = hsum(s_dA) + sdu * uk;
        }
        T part[N];
#pragma GCC unroll 8
        for (int j = 0; j < NV; ++j) vstore(part + j * W, gA[j]);
        for (int64_t n = 0; n < N; ++n) gAtot[n] += part[n];
      }
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) vstore(gx0 + bd * N + j * W, g[j]);
      for (int64_t n = 0; n < N; ++n) gA_part[bd * N + n] = static_cast<T>(gAtot[n]);
    }
  }
}

// One instance per (dtype, N) and per instruction set: AVX-512, AVX2 + FMA and the baseline
// on x86-64 (picked by what the CPU supports), the baseline elsewhere. Scalar-loop instances
// s<N> (s0: any N) and vector ones v<NV> (N = NV vectors).
#define HIPPO_ONE(ATTR, T, TAG, FWD, BWD, ISA)                                                \
  ATTR void fwd_##T##_##TAG##ISA(int64_t b0, int64_t b1, const T* u, const T* delta,       \
                                 const T* A, const T* Bm, const T* Cm, const T* x0, T* y,  \
                                 T* x_last, T* xs, const Sizes<T>& sz, bool zoh) {         \
    FWD(b0, b1, u, delta, A, Bm, Cm, x0, y, x_last, xs, sz, zoh);                          \
  }                                                                                        \
  ATTR void bwd_##T##_##TAG##ISA(int64_t b0, int64_t b1, const T* u, const T* delta,       \
                                 const T* A, const T* Bm, const T* Cm, const T* xs,        \
                                 const T* gy, const T* g_last, T* gu, T* gdelta,           \
                                 T* gA_part, T* gB, T* gC, T* gx0, const Sizes<T>& sz,     \
                                 bool zoh) {                                               \
    BWD(b0, b1, u, delta, A, Bm, Cm, xs, gy, g_last, gu, gdelta, gA_part, gB, gC, gx0, sz, \
        zoh);                                                                              \
  }

#if HIPPO_X86
#define HIPPO_ALL_ISA(T, TAG, FWD, BWD)                                       \
  HIPPO_ONE(HIPPO_V4, T, TAG, FWD, BWD, _v4) HIPPO_ONE(HIPPO_V3, T, TAG, FWD, BWD, _v3) \
  HIPPO_ONE(, T, TAG, FWD, BWD, _base)
#else
#define HIPPO_ALL_ISA(T, TAG, FWD, BWD) HIPPO_ONE(, T, TAG, FWD, BWD, _base)
#endif
#define HIPPO_SCALAR(T, NC) HIPPO_ALL_ISA(T, s##NC, (fwd_range<T, NC>), (bwd_range<T, NC>))
#define HIPPO_VECTOR(T, NV) HIPPO_ALL_ISA(T, v##NV, (vfwd_range<T, NV>), (vbwd_range<T, NV>))

HIPPO_SCALAR(float, 0)
HIPPO_SCALAR(float, 4)
HIPPO_SCALAR(float, 8)
HIPPO_VECTOR(float, 1)
HIPPO_VECTOR(float, 2)
HIPPO_VECTOR(float, 4)
HIPPO_SCALAR(double, 0)
HIPPO_SCALAR(double, 4)
HIPPO_VECTOR(double, 1)
HIPPO_VECTOR(double, 2)
HIPPO_VECTOR(double, 4)

// 2: AVX-512, 1: AVX2 + FMA, 0: baseline.
int isa_level() {
#if HIPPO_X86
  static const int level = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
      return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
    return 0;
  }();
  return level;
#else
  return 0;
#endif
}

// The vector instance where N is 1, 2 or 4 vectors, else a scalar one.
#define HIPPO_BY_N(T, WHAT, ISA, ...)                                            \
  {                                                                              \
    const int64_t W = Vec<T>::W;                                                 \
    if (sz.N == W) WHAT##_##T##_v1##ISA(__VA_ARGS__);                            \
    else if (sz.N == 2 * W) WHAT##_##T##_v2##ISA(__VA_ARGS__);                   \
    else if (sz.N == 4 * W) WHAT##_##T##_v4##ISA(__VA_ARGS__);                   \
    else if (sz.N == 4) WHAT##_##T##_s4##ISA(__VA_ARGS__);                       \
    else HIPPO_S8_##T(WHAT, ISA, __VA_ARGS__)                                    \
  }
#define HIPPO_S8_float(WHAT, ISA, ...)                         \
  if (sz.N == 8) WHAT##_float_s8##ISA(__VA_ARGS__);            \
  else WHAT##_float_s0##ISA(__VA_ARGS__);
#define HIPPO_S8_double(WHAT, ISA, ...) WHAT##_double_s0##ISA(__VA_ARGS__);
#if HIPPO_X86
#define HIPPO_DISPATCH(T, WHAT, ...)                             \
  switch (isa_level()) {                                         \
    case 2: HIPPO_BY_N(T, WHAT, _v4, __VA_ARGS__) break;         \
    case 1: HIPPO_BY_N(T, WHAT, _v3, __VA_ARGS__) break;         \
    default: HIPPO_BY_N(T, WHAT, _base, __VA_ARGS__)             \
  }
#else
#define HIPPO_DISPATCH(T, WHAT, ...) HIPPO_BY_N(T, WHAT, _base, __VA_ARGS__)
#endif

}  // namespace

extern "C" {

// u, delta (Bt, D, L); A (D, N); B, C (Bt, L, N); x0 (Bt, D, N) -> y (Bt, D, L), x_last
// (Bt, D, N), xs (Bt, D, ceil(L / chunk), N) chunk-start states (nullptr: not kept).
#define HIPPO_FWD(T, SUF)                                                                      \
  void hippo_sscan_fwd_##SUF(const T* u, const T* delta, const T* A, const T* Bm, const T* Cm, \
                             const T* x0, T* y, T* x_last, T* xs, int64_t Bt, int64_t D,       \
                             int64_t L, int64_t N, int64_t chunk, int zoh) {                   \
    const Sizes<T> sz{Bt, D, L, N, chunk};                                                     \
    at::parallel_for(0, Bt, 1, [&](int64_t b0, int64_t b1) {                                   \
      HIPPO_DISPATCH(T, fwd, b0, b1, u, delta, A, Bm, Cm, x0, y, x_last, xs, sz, zoh != 0)     \
    });                                                                                        \
  }
#define HIPPO_BWD(T, SUF)                                                                      \
  void hippo_sscan_bwd_##SUF(const T* u, const T* delta, const T* A, const T* Bm, const T* Cm, \
                             const T* xs, const T* gy, const T* g_last, T* gu, T* gdelta,      \
                             T* gA_part, T* gB, T* gC, T* gx0, int64_t Bt, int64_t D,          \
                             int64_t L, int64_t N, int64_t chunk, int zoh) {                   \
    const Sizes<T> sz{Bt, D, L, N, chunk};                                                     \
    at::parallel_for(0, Bt, 1, [&](int64_t b0, int64_t b1) {                                   \
      HIPPO_DISPATCH(T, bwd, b0, b1, u, delta, A, Bm, Cm, xs, gy, g_last, gu, gdelta, gA_part, \
                     gB, gC, gx0, sz, zoh != 0)                                                \
    });                                                                                        \
  }

HIPPO_FWD(float, f32)
HIPPO_FWD(double, f64)
HIPPO_BWD(float, f32)
HIPPO_BWD(double, f64)

}  // extern "C"
