"""State-space kernels for deep SSMs (S4D, LSSL): initialisations derived from HiPPO, the
convolution kernel of a discretised LTI system, and its recurrent step.

Pure torch, any device. Two forms of one layer ``x' = A x + B u``, ``y = C x`` (per channel h,
step ``dt[h]``): a convolution ``y = K * u`` for training and a recurrence for streaming.

**Diagonal** (S4D; Gu, Gupta, Goel, Re 2022, "On the Parameterization and Initialization of
Diagonal State Space Models"): A diagonal complex with N/2 conjugate pairs, of which only one
of each is stored (``A``, ``B``, ``C`` of shape (H, N/2)); the real kernel is twice the real
part of the half sum. Discretisations (``dtA = dt * A``):

- ``zoh``: ``Abar = exp(dtA)``, ``Bbar = (exp(dtA) - 1) / A * B``;
- ``bilinear``: ``Abar = (1 + dtA/2) / (1 - dtA/2)``, ``Bbar = dt B / (1 - dtA/2)``.

Kernel ``K[h, l] = 2 Re(sum_n C[h,n] Bbar[h,n] Abar[h,n]^l)`` (a Vandermonde product; powers
as ``exp(l log Abar)``, split as ``l = qT + r`` with T ~ sqrt(L) so that the sum over n is one
batched matmul of two small Vandermonde factors). Recurrence ``x_k = Abar x_{k-1} + Bbar u_k``, ``y_k = 2 Re(C x_k)``.

**Dense** (LSSL with a fixed HiPPO A; Gu et al. 2021): A (N, N) real, shared by the channels,
``B`` (N,), ``C`` (H, N). ``(Ad, Bd)`` per channel by the formulas of :mod:`hippo.discretize`
(batched over a tensor ``dt``, differentiable in it), kernel ``K[h, l] = C[h] Ad[h]^l Bd[h]``
by repeated squaring (log2 L batched matmuls; no eigendecomposition: LegS's eigenvectors are
exponentially ill-conditioned in N, so a diagonalised LegS kernel loses every digit).

``dt`` may carry leading batch dims (..., H) (one step per series, for sampling-rate changes):
kernels are then (..., H, L).

**Initialisations** (:func:`s4d_init`, eigenvalues with positive imaginary part, one per pair):

- ``legs``: the eigenvalues of the normal part of LegS's normal-plus-low-rank form. With
  :func:`hippo.transition`'s convention (``A[n,k] = -s_n s_k`` below the diagonal, ``-(n+1)``
  on it) and ``P_n = sqrt(n + 1/2)``, ``A + P P^T = -I/2 + S`` with S skew-symmetric
  (``S[n,k] = -sqrt((n+1/2)(k+1/2))`` for n > k): eigenvalues ``-1/2 + i w``. ``B`` is LegS's
  ``B`` in the eigenbasis, ``V^H B`` (V unitary: the normal part is normal), with its
  imaginary part clipped to ``[-B_clip, B_clip]`` (default 2), as S4's diagonal-LegS
  (state-spaces/s4 ``hippo.nplr('legs', N, B_clip=2.0)``): unclipped, ``|B|`` grows like N
  (40.75 at N = 64, ``sum |B|^2 = N^2/2 = 2048``; clipped 74.9). ``B_clip=None`` keeps the
  exact ``V^H B``. Each eigenvector's phase makes its first component real and positive
  (LAPACK's own convention up to sign, made explicit: the clipped part must not depend on
  the build); s4 keeps the conjugate half, which gives the conjugate system. The others take
  ``B = 1``.
- ``lin``: ``-1/2 + i pi n``; ``inv``: ``-1/2 + i (N/pi)(N/(2n+1) - 1)``; ``real``: ``-(n+1)``
  (n = 0 .. N/2 - 1).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from hippo.linalg import solve
from hippo.transition import check_order, transition

INITS = ("legs", "lin", "inv", "real")
DIAG_METHODS = ("zoh", "bilinear")
DENSE_METHODS = ("zoh", "bilinear")


def legs_normal_part(N: int) -> tuple[Tensor, Tensor]:
    """``(A + P P^T, P)`` for LegS at order N (float64): the normal part and the low-rank term."""
    A, _ = transition("legs", check_order(N))
    P = torch.sqrt(torch.arange(N, dtype=torch.float64) + 0.5)
    return A + P[:, None] * P[None, :], P


def s4d_init(kind: str, N: int, B_clip: float | None = 2.0) -> tuple[Tensor, Tensor]:
    """``(A, B)``, each (N//2,) complex128: the S4D initialisation ``kind`` of state size N.

    N must be even (conjugate pairs). ``B_clip`` (``legs`` only): clip ``Im B`` to
    ``[-B_clip, B_clip]`` as S4 does (None: no clipping). See the module docstring.
    """
    if B_clip is not None and not B_clip > 0:
        raise ValueError(f"B_clip must be a positive number or None, got {B_clip!r}")
    if kind not in INITS:
        raise ValueError(f"unknown S4D initialisation {kind!r}; valid: {', '.join(INITS)}")
    check_order(N)
    if N % 2:
        raise ValueError(f"S4D state size N must be even (N/2 conjugate pairs), got {N}")
    half = N // 2
    n = torch.arange(half, dtype=torch.float64)
    ones = torch.ones(half, dtype=torch.complex128)
    if kind == "lin":
        return torch.complex(torch.full_like(n, -0.5), math.pi * n), ones
    if kind == "inv":
        return torch.complex(torch.full_like(n, -0.5), N / math.pi * (N / (2 * n + 1) - 1)), ones
    if kind == "real":
        return torch.complex(-(n + 1), torch.zeros_like(n)), ones
    normal, _ = legs_normal_part(N)
    S = normal + 0.5 * torch.eye(N, dtype=torch.float64)  # skew-symmetric
    # i S is Hermitian: i S v = mu v  <=>  S v = -i mu v. eigh gives orthonormal v.
    mu, V = torch.linalg.eigh(1j * S.to(torch.complex128))
    imag = -mu
    order = torch.argsort(imag, descending=True)[:half]  # the positive half
    order = order[torch.argsort(imag[order])]  # ascending frequency
    A = torch.complex(torch.full((half,), -0.5, dtype=torch.float64), imag[order])
    V = V[:, order]
    V = V * (V[0].abs() / V[0])  # first component real and positive (V[0] != 0 for LegS)
    _, B_legs = transition("legs", N)
    B = V.conj().T @ B_legs.to(torch.complex128)
    if B_clip is not None:
        B = torch.complex(B.real, B.imag.clamp(-B_clip, B_clip))
    return A, B


def _check_method(method: str, valid: tuple[str, ...]) -> None:
    if method not in valid:
        raise ValueError(f"unknown discretisation {method!r}; valid: {', '.join(valid)}")


def diag_discretize(A: Tensor, B: Tensor, dt: Tensor, method: str = "zoh"
                    ) -> tuple[Tensor, Tensor, Tensor]:
    """``(Abar, Bbar, log Abar)`` of a diagonal system, each (..., H, n).

    ``A``, ``B`` (H, n) complex; ``dt`` (..., H) real positive.
    """
    _check_method(method, DIAG_METHODS)
    dtA = dt[..., None] * A
    if method == "zoh":
        Abar = torch.exp(dtA)
        return Abar, (Abar - 1) / A * B, dtA
    denom = 1 - dtA / 2
    Abar = (1 + dtA / 2) / denom
    return Abar, dt[..., None] * B / denom, torch.log(Abar)


def diag_kernel(A: Tensor, B: Tensor, C: Tensor, dt: Tensor, L: int, method: str = "zoh"
                ) -> Tensor:
    """The length-L convolution kernel (..., H, L) (real) of the diagonal system.

    ``A``, ``B``, ``C`` (H, n) complex (one of each conjugate pair); ``dt`` (..., H).
    """
    _, Bbar, logA = diag_discretize(A, B, dt, method)
    # Abar^(qT + r) = Abar^(qT) Abar^r: two small Vandermonde factors (exact exponentials, no
    # chain of products), contracted over n by one batched matmul, so the (..., H, n, L)
    # Vandermonde matrix is never formed and only O(n sqrt(L)) complex exps are taken.
    T = max(1, math.isqrt(L - 1) + 1) if L > 0 else 1
    Q = -(-L // T)
    real = logA.real.dtype
    lo = torch.exp(logA[..., None] * torch.arange(T, device=logA.device, dtype=real))
    hi = torch.exp(logA[..., None] * (T * torch.arange(Q, device=logA.device, dtype=real)))
    CB = (C * Bbar)[..., None] * hi  # (..., H, n, Q)
    K = CB.transpose(-1, -2) @ lo  # (..., H, Q, T)
    return 2 * K.real.flatten(-2)[..., :L]


def diag_step(x: Tensor, u: Tensor, Abar: Tensor, Bbar: Tensor) -> Tensor:
    """One recurrent step ``x <- Abar x + Bbar u``: x (..., H, n) complex, u (..., H)."""
    return Abar * x + Bbar * u[..., None]


def diag_output(x: Tensor, C: Tensor) -> Tensor:
    """``y = 2 Re(sum_n C x)``: x (..., H, n), C (H, n) -> (..., H)."""
    return 2 * (C * x).sum(-1).real


def diag_recurrence(A: Tensor, B: Tensor, C: Tensor, dt: Tensor, u: Tensor,
                    method: str = "zoh") -> Tensor:
    """Reference: run the recurrence over u (..., H, L) from x = 0; returns y (..., H, L)."""
    Abar, Bbar, _ = diag_discretize(A, B, dt, method)
    x = torch.zeros(*u.shape[:-1], A.shape[-1], dtype=Abar.dtype, device=u.device)
    ys = []
    for k in range(u.shape[-1]):
        x = diag_step(x, u[..., k], Abar, Bbar)
        ys.append(diag_output(x, C))
    return torch.stack(ys, dim=-1)


def dense_discretize(A: Tensor, B: Tensor, dt: Tensor, method: str = "bilinear"
                     ) -> tuple[Tensor, Tensor]:
    """``(Ad, Bd)`` of shapes (..., N, N), (..., N) for A (N, N), B (N,) and steps dt (...).

    The formulas of :func:`hippo.discretize` (``bilinear``; ``zoh`` via the exponential of the
    augmented matrix), batched over a tensor ``dt`` and differentiable in it.
    """
    _check_method(method, DENSE_METHODS)
    N = A.shape[-1]
    d = dt[..., None, None]
    if method == "zoh":
        M = torch.zeros(N + 1, N + 1, dtype=A.dtype, device=A.device)
        M[:N, :N] = A
        M[:N, N] = B
        E = torch.linalg.matrix_exp(d * M)
        return E[..., :N, :N], E[..., :N, N]
    eye = torch.eye(N, dtype=A.dtype, device=A.device)
    lhs = eye - d / 2 * A
    rhs = torch.cat([(eye + d / 2 * A), (d[..., 0] * B)[..., None].expand(*dt.shape, N, 1)],
                    dim=-1)
    sol = solve(lhs, rhs)
    return sol[..., :N], sol[..., N]


def dense_powers(Ad: Tensor, v: Tensor, L: int) -> Tensor:
    """``Ad^l v`` for l < L: (..., L, N) from Ad (..., N, N) and v (..., N), by doubling."""
    K = v[..., None, :]
    P = Ad
    while K.shape[-2] < L:
        K = torch.cat([K, K @ P.transpose(-1, -2)], dim=-2)
        if K.shape[-2] < L:
            P = P @ P
    return K[..., :L, :]


def dense_kernel(A: Tensor, B: Tensor, C: Tensor, dt: Tensor, L: int,
                 method: str = "bilinear") -> Tensor:
    """Kernel ``K[..., h, l] = C[h] Ad_h^l Bd_h`` (..., H, L): A (N, N), B (N,), C (H, N),
    dt (..., H)."""
    Ad, Bd = dense_discretize(A, B, dt, method)  # (..., H, N, N), (..., H, N)
    return (dense_powers(Ad, Bd, L) * C[..., None, :]).sum(-1)


def dense_recurrence(A: Tensor, B: Tensor, C: Tensor, dt: Tensor, u: Tensor,
                     method: str = "bilinear") -> Tensor:
    """Reference: ``x_k = Ad x_{k-1} + Bd u_k``, ``y_k = C x_k`` over u (..., H, L) -> y."""
    Ad, Bd = dense_discretize(A, B, dt, method)
    x = torch.zeros(*u.shape[:-1], A.shape[-1], dtype=Ad.dtype, device=u.device)
    ys = []
    for k in range(u.shape[-1]):
        x = (Ad @ x[..., None])[..., 0] + Bd * u[..., k, None]
        ys.append((C * x).sum(-1))
    return torch.stack(ys, dim=-1)


__all__ = [
    "DENSE_METHODS",
    "DIAG_METHODS",
    "INITS",
    "dense_discretize",
    "dense_kernel",
    "dense_powers",
    "dense_recurrence",
    "diag_discretize",
    "diag_kernel",
    "diag_output",
    "diag_recurrence",
    "diag_step",
    "legs_normal_part",
    "s4d_init",
]
