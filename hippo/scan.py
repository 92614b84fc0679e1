"""Selective scan (Mamba; Gu and Dao 2023, ``selective_scan_ref``), pure torch.

Per batch b, channel d, state n and step k, with input-dependent ``delta``, ``B``, ``C``:

    x[b,d,n,k] = exp(delta[b,d,k] A[d,n]) x[b,d,n,k-1] + delta[b,d,k] B[b,n,k] u[b,d,k]
    y[b,d,k]   = sum_n C[b,n,k] x[b,d,n,k]

ZOH on A, Euler on B (``delta B u``), from ``x = 0``. With ``zoh_b=True`` B is held
exactly too: ``delta B u`` becomes ``(exp(delta A) - 1) / A * B u`` (= ``delta phi(delta A) B u``,
``phi(z) = (e^z - 1)/z``). Euler's steady-state gain ``delta / (1 - exp(delta A))`` tends to
ZOH's ``-1/A`` only when ``delta |A| << 1``: for fast modes it depends on the step, so a
sampling-rate change alters the response even with delta rescaled (measured in
tests/bench/test_deep_ssm.py). Shapes: ``u``, ``delta`` (Bt, D, L);
``A`` (D, N) real (negative); ``B``, ``C`` (Bt, N, L). Returns ``y`` (Bt, D, L) (and the last
state (Bt, D, N) with ``return_state=True``).

Two algorithms, equal in value and gradient (tests/hippo/test_scan.py):

- ``sequential``: the reference, a Python loop over L.
- ``chunked`` (default): a loop over chunks of ``chunk`` steps; within a chunk the states of
  every step come from a Hillis-Steele scan (log2(chunk) vectorised passes) on the
  zero-start recurrence, plus the carried state times the cumulative decay. Decays are
  ``exp(S_k - S_j)`` with ``S`` the within-chunk cumulative sum of ``delta A`` (<= 0), so
  every factor is <= 1: no overflow, unlike the ``exp(S_k) * cumsum(exp(-S_j) b_j)`` form.
  Work O(L log chunk) instead of O(L), but L / chunk Python steps instead of L.

Memory: both materialise (Bt, D, N) per step inside autograd (the reference CUDA kernel of
Mamba avoids this by recomputation); chunking keeps the live temporaries at one chunk.
"""

from __future__ import annotations

import torch
from torch import Tensor

SCANS = ("chunked", "sequential")


def _check(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor) -> None:
    Bt, D, L = u.shape
    N = A.shape[-1]
    if delta.shape != u.shape or A.shape != (D, N) or B.shape != (Bt, N, L) or C.shape != B.shape:
        raise ValueError(
            f"selective_scan shapes: u {tuple(u.shape)}, delta {tuple(delta.shape)} (Bt, D, L); "
            f"A {tuple(A.shape)} (D, N); B {tuple(B.shape)}, C {tuple(C.shape)} (Bt, N, L)")


def selective_scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, *,
                   mode: str = "chunked", chunk: int = 32, state: Tensor | None = None,
                   return_state: bool = False, zoh_b: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """The selective scan (module docstring). ``state`` (Bt, D, N): start from it, not 0."""
    if mode not in SCANS:
        raise ValueError(f"unknown scan {mode!r}; valid: {', '.join(SCANS)}")
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive int, got {chunk!r}")
    _check(u, delta, A, B, C)
    Bt, D, L = u.shape
    x = u.new_zeros(Bt, D, A.shape[-1]) if state is None else state
    if mode == "sequential":
        y, x = _sequential(u, delta, A, B, C, x, zoh_b)
    else:
        y, x = _chunked(u, delta, A, B, C, x, chunk, zoh_b)
    return (y, x) if return_state else y


def _phi(z: Tensor) -> Tensor:
    """(e^z - 1) / z, 1 at z = 0."""
    small = z.abs() < 1e-6
    return torch.where(small, 1 + z / 2, torch.expm1(z) / torch.where(small, 1.0, z))


def selective_step(x: Tensor, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                   zoh_b: bool = False) -> tuple[Tensor, Tensor]:
    """One step: x (Bt, D, N), u and delta (Bt, D), B and C (Bt, N) -> (y (Bt, D), new x)."""
    dA = delta[..., None] * A
    inp = (delta * u)[..., None] * B[:, None, :]
    x = torch.exp(dA) * x + (inp * _phi(dA) if zoh_b else inp)
    return (x * C[:, None, :]).sum(-1), x


def _sequential(u, delta, A, B, C, x, zoh_b):
    ys = []
    for k in range(u.shape[-1]):
        y, x = selective_step(x, u[..., k], delta[..., k], A, B[..., k], C[..., k], zoh_b)
        ys.append(y)
    return torch.stack(ys, dim=-1), x


def _chunked(u, delta, A, B, C, x, chunk, zoh_b):
    L = u.shape[-1]
    Bt_ = B.transpose(1, 2)  # (Bt, L, N)
    Ct_ = C.transpose(1, 2)
    du = delta * u
    ys = []
    for s in range(0, L, chunk):
        e = min(L, s + chunk)
        # log-decays and inputs of the chunk: (Bt, D, T, N)
        dA = delta[..., s:e, None] * A[:, None, :]
        S = torch.cumsum(dA, dim=2)
        h = du[..., s:e, None] * Bt_[:, None, s:e]
        if zoh_b:
            h = h * _phi(dA)
        T = e - s
        off = 1
        while off < T:  # h[k] <- h[k] + exp(S_k - S_{k-off}) h[k-off] (Hillis-Steele)
            h = torch.cat([h[:, :, :off],
                           h[:, :, off:] + torch.exp(S[:, :, off:] - S[:, :, :-off]) * h[:, :, :-off]],
                          dim=2)
            off *= 2
        xs = h + torch.exp(S) * x[:, :, None, :]
        ys.append((xs * Ct_[:, None, s:e]).sum(-1))
        x = xs[:, :, -1]
    return (torch.cat(ys, dim=-1) if len(ys) > 1 else ys[0]), x


__all__ = ["SCANS", "selective_scan", "selective_step"]
