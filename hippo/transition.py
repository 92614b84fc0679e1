"""HiPPO transition matrices ``(A, B)`` of the memory ODE ``c'(t) = A c(t) + B f(t)``.

Indices ``n, k = 0 .. N-1``; ``s_n = sqrt(2n + 1)``. All matrices are float64 torch tensors,
``A`` of shape ``(N, N)`` and ``B`` of shape ``(N,)``.

Measures (parameters in brackets, with defaults):

- ``legs`` (scaled Legendre, no parameters): ``A[n,k] = -s_n s_k`` (n > k), ``-(n+1)`` (n = k),
  0 above; ``B[n] = s_n``. Time-varying: the dynamics are ``c' = A c / t + B f / t``; the
  matrices returned here are the ones that get divided by ``t`` (see :mod:`hippo.legs`).
  Eigenvalues are ``-1 .. -N``.
- ``legt`` (translated Legendre, window ``theta=1.0`` in time units): paper normalisation,
  ``A[n,k] = -s_n s_k`` (n >= k), ``-s_n s_k (-1)^(n-k)`` (n < k); ``B[n] = s_n``; both
  divided by ``theta``. With it, ``c_n(t) = (s_n/theta) int_{t-theta}^t f(u) P_n(2(u-t)/theta + 1) du``.
  (The later state-spaces code halves ``A`` and ``B``, which is the same as a window of
  ``2 theta``; we keep the paper's.)
- ``lmu`` (Voelker et al., window ``theta=1.0``): ``A[i,j] = (2i+1) * (-1 if i < j else
  (-1)^(i-j+1))``, ``B[i] = (2i+1)(-1)^i``, both divided by ``theta``. With
  ``T = diag((-1)^n / s_n)``: ``A_legt = T A_lmu T^-1`` and ``B_legt = T B_lmu``.
- ``lagt`` (translated Laguerre, ``beta=1.0``): ``A = I/2 - tril(ones)`` (-1/2 on the diagonal,
  -1 below), ``B = beta * ones``. ``beta`` is only an input gain; the timescale is set by the
  discretisation step. Memory: ``c_n(t) = beta int_0^inf f(t-u) L_n(u) e^(-u/2) du``.
- ``tlagt`` (tilted Laguerre, ``beta=1.0``): ``A = (1-beta)/2 I - tril(ones)``,
  ``B = beta * ones``; ``c_n(t) = beta int_0^inf f(t-u) L_n(u) e^(-(1+beta)u/2) du``.
  ``beta = 1`` is the untilted Laguerre projection under the measure ``e^-u``.
- ``glagt`` (generalised Laguerre, ``alpha=0.0`` in (-1, 1), ``beta=0.01`` > 0): with
  ``h_n = Gamma(n+alpha+1)/n!`` (the squared norm of ``L_n^(alpha)``), ``A = D^-1 A0 D`` and
  ``B = gain * D^-1 B0`` where ``A0 = -(1+beta)/2 I - strict_tril(ones)``,
  ``B0[n] = binom(n+alpha, n) = L_n^(alpha)(0)``, ``D = diag(sqrt(h_n))`` and
  ``gain = beta^((1-alpha)/2) / sqrt(Gamma(1-alpha))``. Unnormalised memory
  ``c0_n(t) = int_0^inf f(t-u) L_n^(alpha)(u) e^(-(1+beta)u/2) du`` and ``c = gain c0 / sqrt(h)``.
  ``alpha=0, beta=1`` gives ``tlagt`` with ``beta=1``.
- ``fout`` (translated Fourier, window ``theta=1.0``): orthonormal basis on the window
  ``x = (u - t + theta)/theta`` in [0, 1], ordered ``[1, sqrt2 cos(2 pi x), sqrt2 sin(2 pi x),
  sqrt2 cos(4 pi x), ...]`` (the first N of them), and
  ``c_n(t) = (1/theta) int_{t-theta}^t f(u) g_n((u - t + theta)/theta) du``. With
  ``p = basis(0) = basis(1) = [1, sqrt2, 0, sqrt2, 0, ...]``: ``A = (W - 2 p p^T)/theta``,
  where ``W[cos_k, sin_k] = 2 pi k``, ``W[sin_k, cos_k] = -2 pi k``, and ``B = 2 p / theta``
  (FouT of Gu et al. 2022, "How to Train Your HiPPO"; the state-spaces code's ``fout`` is
  this with a window of 2, as its legt is ours halved, and sines of the opposite sign).

  Why the 2: exactly, ``c' = W c / theta + p (f(t) - f(t - theta)) / theta``, and the sample
  leaving the window, ``f(t - theta)``, is not stored. The basis is periodic on the window, so
  its series at the window's ends, ``p^T c``, converges to the *average* of the two ends,
  ``(f(t - theta) + f(t)) / 2``, not to ``f(t - theta)`` (the periodic extension of a window
  jumps there). Hence ``f(t - theta) ~ 2 p^T c - f(t)``, which gives ``-2 p p^T`` and ``2 p``.
  The naive ``f(t - theta) ~ p^T c`` (``A = W - p p^T``, ``B = p``; what this module had)
  does not track the projection: its memory converges to that of
  ``g(s) = (2/3) sum_m 3^-m f(s - m theta)`` (each window mixed with the older ones), a bias
  that does not fall with N (measured, sin(2 pi 1.3 t + 0.4) after 3 windows: reconstruction
  MSE ~0.13 at N = 15 .. 127; with the 2: 4.4e-3, 1.3e-3, 4.4e-4, 1.7e-4 at N = 15, 31, 63,
  127, near the direct projection's 1.1e-3, 4.7e-4, 2.3e-4, 1.2e-4).

  What is inherent: for a window that is not periodic the best Fourier fit itself converges
  slowly (a jump in the periodic extension: Gibbs, MSE ~ 1/N, against legt's fast decay), and
  so does the endpoint estimate ``2 p^T c - f(t)``, which leaves the memory at 4.0, 2.8, 2.0
  times the direct projection's MSE at N = 15, 31, 63 above. So fout needs a larger N than
  legt for the same error. For a window-periodic signal the estimate is exact and fout is as
  good as the discretisation (MSE 1e-5 at N = 15, 2000 steps per window).

  Even N: the last basis function, ``cos(2 pi (N/2) x)``, has no sine partner, so its
  coefficient has no closed dynamics (its rotation partner is not stored) and ``p p^T`` would
  feed it the endpoint error (measured: MSE 0.09 instead of 1e-3). Its entry of ``p`` is set
  to 0 here, so it is a dead slot (its row and column of ``A`` and its ``B`` are 0; it stays at
  its initial value, 0): order N = 2m gives the memory of order 2m - 1 plus a zero, as the
  reference code's order N keeps a dead ``sin(0 x)`` slot.
"""

from __future__ import annotations

import math

import torch

MEASURES = ("legs", "legt", "lmu", "lagt", "tlagt", "glagt", "fout")

# Parameters each measure accepts, with defaults (documented in the module docstring).
DEFAULT_PARAMS: dict[str, dict[str, float]] = {
    "legs": {},
    "legt": {"theta": 1.0},
    "lmu": {"theta": 1.0},
    "lagt": {"beta": 1.0},
    "tlagt": {"beta": 1.0},
    "glagt": {"alpha": 0.0, "beta": 0.01},
    "fout": {"theta": 1.0},
}

# Measures whose dynamics are time-invariant (c' = A c + B f); legs is the time-varying one.
LTI_MEASURES = tuple(m for m in MEASURES if m != "legs")


def check_measure(measure: str) -> str:
    """Return ``measure`` if it is known, else raise ValueError naming the valid ones."""
    if measure not in MEASURES:
        raise ValueError(f"unknown measure {measure!r}; valid measures: {', '.join(MEASURES)}")
    return measure


def resolve_params(measure: str, params: dict) -> dict[str, float]:
    """Merge ``params`` into the measure's defaults; reject parameters it does not take."""
    check_measure(measure)
    defaults = DEFAULT_PARAMS[measure]
    unknown = set(params) - set(defaults)
    if unknown:
        valid = ", ".join(defaults) or "none"
        raise ValueError(
            f"measure {measure!r} takes no parameter(s) {sorted(unknown)}; valid: {valid}"
        )
    out = {**defaults, **{k: float(v) for k, v in params.items()}}
    if "theta" in out and not out["theta"] > 0:
        raise ValueError(f"theta (window length) must be > 0, got {out['theta']}")
    if measure in ("tlagt", "glagt") and not out["beta"] > 0:
        raise ValueError(f"{measure} needs beta > 0, got {out['beta']}")
    if measure == "glagt" and not -1.0 < out["alpha"] < 1.0:
        raise ValueError(f"glagt needs alpha in (-1, 1), got {out['alpha']}")
    return out


def check_order(N) -> int:
    """Validate the memory order N (a positive int)."""
    if isinstance(N, bool) or not isinstance(N, int) or N < 1:
        raise ValueError(f"memory order N must be an integer >= 1, got {N!r}")
    return N


def _signs(n: torch.Tensor) -> torch.Tensor:
    """(-1)^n for an integer-valued float tensor (exact for negative n too)."""
    return 1.0 - 2.0 * torch.remainder(n, 2.0)


def transition(measure: str, N: int, **params) -> tuple[torch.Tensor, torch.Tensor]:
    """The continuous-time HiPPO matrices of ``measure`` at order ``N``.

    Returns ``(A, B)``: float64 tensors of shapes ``(N, N)`` and ``(N,)``. See the module
    docstring for the formulas and parameters (``theta`` for legt/lmu/fout, ``beta`` for
    lagt/tlagt/glagt, ``alpha`` for glagt). Raises ValueError for an unknown measure or
    parameter, or ``N < 1``.
    """
    p = resolve_params(measure, params)
    N = check_order(N)
    f64 = torch.float64
    n = torch.arange(N, dtype=f64)
    i, k = n[:, None], n[None, :]  # row index, column index
    s = torch.sqrt(2 * n + 1)
    ones = torch.ones(N, N, dtype=f64)

    if measure == "legs":
        A = -(s[:, None] * s[None, :]) * torch.tril(ones, -1) - torch.diag(n + 1)
        B = s.clone()
    elif measure == "legt":
        pattern = torch.where(i >= k, 1.0, _signs(i - k))
        A = -(s[:, None] * s[None, :]) * pattern / p["theta"]
        B = s / p["theta"]
    elif measure == "lmu":
        pattern = torch.where(i < k, -1.0, _signs(i - k + 1))
        A = (2 * i + 1) * pattern / p["theta"]
        B = (2 * n + 1) * _signs(n) / p["theta"]
    elif measure == "lagt":
        A = torch.eye(N, dtype=f64) / 2 - torch.tril(ones)
        B = p["beta"] * torch.ones(N, dtype=f64)
    elif measure == "tlagt":
        A = (1 - p["beta"]) / 2 * torch.eye(N, dtype=f64) - torch.tril(ones)
        B = p["beta"] * torch.ones(N, dtype=f64)
    elif measure == "glagt":
        alpha, beta = p["alpha"], p["beta"]
        A0 = -(1 + beta) / 2 * torch.eye(N, dtype=f64) - torch.tril(ones, -1)
        # binom(n + alpha, n) and log h_n = lgamma(n+alpha+1) - lgamma(n+1), via lgamma so
        # large N does not overflow.
        log_binom = torch.lgamma(n + alpha + 1) - torch.lgamma(n + 1) - math.lgamma(alpha + 1)
        B0 = torch.exp(log_binom)
        sqrt_h = torch.exp(0.5 * (torch.lgamma(n + alpha + 1) - torch.lgamma(n + 1)))
        gain = beta ** ((1 - alpha) / 2) / math.sqrt(math.gamma(1 - alpha))
        A = A0 * sqrt_h[None, :] / sqrt_h[:, None]
        B = gain * B0 / sqrt_h
    else:  # fout: f(t - theta) ~ 2 p^T c - f(t) (the series at the ends is their average)
        pvec, W = _fourier_parts(N)
        A = (W - 2 * pvec[:, None] * pvec[None, :]) / p["theta"]
        B = 2 * pvec / p["theta"]
    return A.contiguous(), B.contiguous()


def fourier_frequencies(N: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For the fout basis: frequency k of each index and whether it is a cosine (else sine).

    Index 0 is the constant (k = 0, cosine); 2k-1 is cos_k, 2k is sin_k.
    """
    idx = torch.arange(N)
    freq = (idx + 1) // 2
    is_cos = (idx % 2 == 1) | (idx == 0)
    return freq, is_cos


def _fourier_parts(N: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``p`` (basis values at the window's ends) and the rotation part ``W`` of fout.

    For even N the unpaired last cosine gets ``p = 0`` (a dead slot; module docstring).
    """
    freq, is_cos = fourier_frequencies(N)
    pvec = is_cos.to(torch.float64) * math.sqrt(2.0)  # float64 throughout (where() gives float32)
    pvec[0] = 1.0
    if N % 2 == 0:
        pvec[-1] = 0.0
    W = torch.zeros(N, N, dtype=torch.float64)
    for c in range(1, N - 1, 2):  # cos_k at c, sin_k at c + 1
        w = 2 * math.pi * float(freq[c])
        W[c, c + 1] = w
        W[c + 1, c] = -w
    return pvec, W
