"""Reconstruct the history a HiPPO memory encodes: ``reconstruct(c, measure, num_points)``.

Positions ``x`` in [0, 1] run from the oldest remembered time (0) to now (1):

- ``legs``: the whole history [0, t]; ``f(x t) ~ sum_n c_n s_n P_n(2x - 1)``, ``s_n = sqrt(2n+1)``.
- ``legt``: the window [t - theta, t]; the same Legendre series (theta only sets the window).
- ``lmu``: converted to legt coefficients (``c_legt = diag((-1)^n / s_n) c_lmu``), then as legt.
- ``fout``: the window [t - theta, t]; ``f ~ c_0 + sum_k sqrt2 (c_cos_k cos 2 pi k x +
  c_sin_k sin 2 pi k x)`` (for even N the last, unpaired cosine's coefficient is a dead slot,
  0 from :func:`hippo.project`; see :mod:`hippo.transition`). A window that is not periodic
  converges slowly (Gibbs at its ends), so fout needs a larger N than legt for the same error.
- ``lagt``, ``tlagt``, ``glagt``: the measure has infinite support, so a ``horizon`` (time
  units, > 0) is required: x maps to the lag ``u = horizon (1 - x)`` behind now, and
  ``f(t - u) ~ w(u) sum_n c_n L_n^(alpha)(u) / norm_n`` with the weights of
  :mod:`hippo.transition` (lagt: ``w = e^(-u/2) / beta``; tlagt: ``w = e^(-(1-beta)u/2) /
  beta``; glagt: ``w = u^alpha e^(-(1-beta)u/2) / gain``, ``norm_n = sqrt(h_n)``).
"""

from __future__ import annotations

import math

import torch

from hippo.transition import check_measure, fourier_frequencies, resolve_params

LAGUERRE = ("lagt", "tlagt", "glagt")


def legendre_basis(x: torch.Tensor, N: int) -> torch.Tensor:
    """``s_n P_n(2x - 1)`` for n < N at positions x (M,) -> (M, N) (three-term recurrence)."""
    y = 2 * x - 1
    P = [torch.ones_like(y), y]
    for n in range(1, N - 1):
        P.append(((2 * n + 1) * y * P[n] - n * P[n - 1]) / (n + 1))
    s = torch.sqrt(2 * torch.arange(N, dtype=x.dtype, device=x.device) + 1)
    return torch.stack(P[:N], dim=-1) * s


def laguerre_basis(u: torch.Tensor, N: int, alpha: float, w0: torch.Tensor) -> torch.Tensor:
    """``w0(u) L_n^(alpha)(u)`` for n < N, u (M,) -> (M, N).

    The weight is folded into the start of the recurrence so large n and u do not overflow
    (the weighted functions stay bounded where the unweighted polynomials would not).
    """
    L = [w0, w0 * (1 + alpha - u)]
    for n in range(1, N - 1):
        L.append(((2 * n + 1 + alpha - u) * L[n] - (n + alpha) * L[n - 1]) / (n + 1))
    return torch.stack(L[:N], dim=-1)


def basis(measure: str, N: int, x: torch.Tensor, *, horizon: float | None = None,
          **params) -> torch.Tensor:
    """The reconstruction basis at positions x (M,) in [0, 1]: (M, N); f(x) ~ basis @ c."""
    check_measure(measure)
    p = resolve_params(measure, params)
    if measure in LAGUERRE:
        if horizon is None or not horizon > 0:
            raise ValueError(f"reconstructing {measure!r} needs horizon > 0 (time units of "
                             f"history to show), got {horizon!r}")
    elif horizon is not None:
        raise ValueError(f"horizon is only used by {LAGUERRE}, not {measure!r}")
    if measure in ("legs", "legt"):
        return legendre_basis(x, N)
    if measure == "lmu":
        n = torch.arange(N, dtype=x.dtype, device=x.device)
        return legendre_basis(x, N) * (1 - 2 * (n % 2)) / torch.sqrt(2 * n + 1)
    if measure == "fout":
        freq, is_cos = fourier_frequencies(N)
        freq, is_cos = freq.to(x.device), is_cos.to(x.device)
        phase = 2 * math.pi * x[:, None] * freq.to(x.dtype)
        out = math.sqrt(2) * torch.where(is_cos, torch.cos(phase), torch.sin(phase))
        out[:, 0] = 1.0
        return out
    u = horizon * (1 - x)
    beta = p["beta"]
    if measure == "lagt":
        return laguerre_basis(u, N, 0.0, torch.exp(-u / 2) / beta)
    if measure == "tlagt":
        return laguerre_basis(u, N, 0.0, torch.exp(-(1 - beta) * u / 2) / beta)
    alpha = p["alpha"]
    gain = beta ** ((1 - alpha) / 2) / math.sqrt(math.gamma(1 - alpha))
    n = torch.arange(N, dtype=x.dtype, device=x.device)
    sqrt_h = torch.exp(0.5 * (torch.lgamma(n + alpha + 1) - torch.lgamma(n + 1)))
    w0 = u**alpha * torch.exp(-(1 - beta) * u / 2) / gain
    return laguerre_basis(u, N, alpha, w0) / sqrt_h


def evaluate(coefficients: torch.Tensor, measure: str, x: torch.Tensor, *,
             horizon: float | None = None, **params) -> torch.Tensor:
    """The approximated history at positions x (M,) in [0, 1] (0 oldest): (..., N) -> (..., M)."""
    B = basis(measure, coefficients.shape[-1], x.to(coefficients), horizon=horizon, **params)
    return coefficients @ B.T


def reconstruct(coefficients: torch.Tensor, measure: str, num_points: int, *,
                horizon: float | None = None, **params) -> torch.Tensor:
    """The approximated history at ``num_points`` evenly spaced times, oldest first.

    ``coefficients`` (..., N) -> (..., num_points). Positions ``linspace(0, 1, num_points)``
    span the history (legs), the window (legt, lmu, fout) or the last ``horizon`` time units
    (Laguerre measures); see the module docstring.
    """
    if isinstance(num_points, bool) or not isinstance(num_points, int) or num_points < 1:
        raise ValueError(f"num_points must be an int >= 1, got {num_points!r}")
    x = torch.linspace(0, 1, num_points, dtype=torch.float64)
    return evaluate(coefficients, measure, x, horizon=horizon, **params)
