"""Causal convolution via FFTs: the one implementation hippo uses (LTI memories in
:mod:`hippo.project`, learned state-space kernels in :mod:`hippo.ssm` and the deep models).

``causal_conv(u, kernel, dim=-1)``: ``y[..., k] = sum_{m <= k} kernel[..., m] u[..., k - m]``
for ``u`` with time along ``dim`` (length L) and ``kernel`` (..., Lk) with time last (its
leading dims broadcast against u's other dims, in order; taps past L are unused). The path for
learned kernels (deep SSMs): one autograd Function with a hand-written backward. It transforms
at ``n`` = :func:`fft_size` (2L - 1) (the smallest 2^a 3^b at or above it: ``n >= 2L - 1``
makes the circular convolution the linear one, and such sizes transform 2-3x faster than
``2L`` itself, e.g. 384 against 364), along the last dimension of a contiguous copy (2x faster
than strided transforms), and returns y contiguous in u's layout. Forward: ``irfft(rfft(u) *
rfft(kernel))[:L]``; backward, with ``G = rfft(gy)``: ``du = irfft(G conj(K))[:L]`` and
``dkernel = irfft(sum_batch G conj(U))[:L]`` (cross-correlations; exact for ``n >= 2L - 1``).
It saves the two spectra; no zero-filled buffers, no slice backward, no copy beyond the
layout changes. Double backward is not supported.

``causal_conv_fft(u, kernel_fft)`` takes the kernel's spectrum instead (``rfft(kernel, n=2L)``,
(..., L+1) complex; :func:`kernel_spectrum`), for callers that reuse one fixed kernel across
calls (hippo.project caches it per hashable configuration). Learned kernels must not be cached
(their values change at every optimiser step): call :func:`causal_conv` with the kernel itself.
Differentiable in ``u`` and in the spectrum (torch.fft's autograd).

CPU, ``causal_conv_fft``: the inverse transforms run in blocks of about
:data:`FFT_BLOCK_BYTES` over the first and the last batch dimension, joined with ``torch.cat``
(a slice write into a preallocated tensor would make backward copy the whole gradient per
block). One (B, N, 2L) product spectrum and its inverse would stream several arrays of
B * N * 2L elements through main memory and page-fault them in when freshly allocated; blocks of
a few MiB stay in cache (4x faster at N = 256, L = 4096 on the reference machine). That pays for
the long LTI memories; the deep models' (B, H, L) convolutions are small and learned, and take
``causal_conv``. On other devices: one call.

No caching here. Half precision (and other dtypes torch's CPU FFT does not take) convolves in
float32 and is cast back.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

# Working set of one block of the CPU FFT convolution (spectra + inverse transforms): a few MiB,
# so a block stays in the caches (2 MiB L2 per core, 32 MiB L3 on the reference machine).
FFT_BLOCK_BYTES = 4 << 20

_FFT_DTYPES = (torch.float32, torch.float64)


def _complex_of(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def kernel_spectrum(kernel: Tensor, L: int) -> Tensor:
    """``rfft`` of ``kernel`` (..., Lk) zero-padded (or cut) to length L, then to 2L: (..., L+1)."""
    if kernel.shape[-1] > L:
        kernel = kernel[..., :L]
    if kernel.dtype not in _FFT_DTYPES:
        kernel = kernel.float()
    return torch.fft.rfft(kernel, n=2 * L, dim=-1)


def fft_size(m: int) -> int:
    """The smallest ``2^a 3^b >= m`` (>= 1): a length the FFT transforms fast."""
    best = 1 << max(0, (m - 1).bit_length())  # the power of two at or above m
    p3 = 1
    while p3 < best:
        p2 = p3
        while p2 < m:
            p2 *= 2
        best = min(best, p2)
        p3 *= 3
    return best


def causal_conv(u: Tensor, kernel: Tensor, dim: int = -1) -> Tensor:
    """Causal convolution of ``u`` (time along ``dim``) with ``kernel`` (..., Lk) (time last).

    Returns u's shape broadcast with the kernel's leading dims, time along ``dim``, contiguous,
    in ``u``'s dtype (see the module docstring).
    """
    if u.ndim < 1 or kernel.ndim < 1:
        raise ValueError("u and kernel need a time dimension")
    d = dim % u.ndim if -u.ndim <= dim < u.ndim else None
    if d is None:
        raise ValueError(f"dim must index one of u's {u.ndim} dimensions, got {dim}")
    work = u if u.dtype in _FFT_DTYPES else u.float()
    k = kernel.to(work.dtype) if kernel.dtype != work.dtype else kernel
    ut = work.movedim(d, -1)
    L = ut.shape[-1]
    if kernel.shape[-1] > L:
        k = k[..., :L]
    batch = torch.broadcast_shapes(ut.shape[:-1], k.shape[:-1])
    if L == 0 or any(s == 0 for s in batch):
        y = ut.new_zeros(*batch, L)
    else:
        y = _CausalConv.apply(ut, k)
    return y.movedim(-1, d).contiguous().to(u.dtype)


class _CausalConv(torch.autograd.Function):
    """u (..., L), kernel (..., Lk <= L), time last -> y (broadcast, L); module docstring."""

    @staticmethod
    def forward(ctx, u, kernel):
        L, Lk = u.shape[-1], kernel.shape[-1]
        n = fft_size(2 * L - 1)
        U = torch.fft.rfft(u.contiguous(), n=n)
        Kf = torch.fft.rfft(kernel.contiguous(), n=n)
        y = torch.fft.irfft(U * Kf, n=n)[..., :L]
        ctx.n, ctx.L, ctx.Lk = n, L, Lk
        ctx.shapes = (u.shape, kernel.shape)
        ctx.save_for_backward(U if ctx.needs_input_grad[1] else None,
                              Kf if ctx.needs_input_grad[0] else None)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        U, Kf = ctx.saved_tensors
        n, L, Lk = ctx.n, ctx.L, ctx.Lk
        u_shape, k_shape = ctx.shapes
        G = torch.fft.rfft(gy.contiguous(), n=n)
        gu = gk = None
        if ctx.needs_input_grad[0]:
            gu = torch.fft.irfft(G * Kf.conj(), n=n)[..., :L]
            gu = _sum_to(gu, u_shape[:-1])
        if ctx.needs_input_grad[1]:
            P = _sum_to(G * U.conj(), k_shape[:-1])  # sum over the batch before the inverse
            gk = torch.fft.irfft(P, n=n)[..., :Lk]
        return gu, gk


def _sum_to(x: Tensor, lead: torch.Size) -> Tensor:
    """Sum x (..., T) over the leading dims that ``lead`` (a broadcast source) lacks or has as 1."""
    extra = x.ndim - 1 - len(lead)
    if extra:
        x = x.sum(dim=tuple(range(extra)))
    dims = tuple(i for i, s in enumerate(lead) if s == 1 and x.shape[i] != 1)
    return x.sum(dim=dims, keepdim=True) if dims else x


def causal_conv_fft(u: Tensor, kernel_fft: Tensor, *, block_bytes: int | None = None) -> Tensor:
    """Causal convolution of ``u`` (..., L) real with kernels given by their spectra
    ``kernel_fft`` (..., L+1) complex (``rfft`` at ``n = 2L``); leading dims broadcast.

    Returns a (broadcast(...), L) tensor (real, ``u``'s dtype; float32 or float64), which may
    be a non-contiguous view. ``block_bytes``: CPU block size (default :data:`FFT_BLOCK_BYTES`).
    """
    L = u.shape[-1]
    if kernel_fft.shape[-1] != L + 1:
        raise ValueError(f"kernel_fft must have L + 1 = {L + 1} frequencies (rfft at n = 2L), "
                         f"got {kernel_fft.shape[-1]}")
    if u.dtype not in _FFT_DTYPES:
        return causal_conv_fft(u.float(), kernel_fft, block_bytes=block_bytes).to(u.dtype)
    batch = torch.broadcast_shapes(u.shape[:-1], kernel_fft.shape[:-1])
    n = 2 * L
    if L == 0 or any(s == 0 for s in batch):
        return u.new_zeros(*batch, L)
    # Work on a 2-d batch (rows, cols): blocks go over both. Fewer batch dims get leading 1s;
    # more are flattened into the columns (expanding u, which is cheap next to the spectra).
    if len(batch) > 2:
        cols = 1
        for s in batch[1:]:
            cols *= s
        u = u.expand(*batch, L).reshape(batch[0], cols, L)
        kernel_fft = kernel_fft.expand(*batch, L + 1).reshape(batch[0], cols, L + 1)
    u = u.reshape(*(1,) * (3 - u.ndim), *u.shape)
    kf = kernel_fft.reshape(*(1,) * (3 - kernel_fft.ndim), *kernel_fft.shape)
    rows, cols = torch.broadcast_shapes(u.shape[:-1], kf.shape[:-1])
    block = FFT_BLOCK_BYTES if block_bytes is None else block_bytes
    out = _blocked(torch.fft.rfft(u, n=n, dim=-1), kf, (rows, cols), L, u, block)
    return out if len(batch) == 2 else out.reshape(*batch, L)


def _blocked(spec_u: Tensor, kf: Tensor, batch: tuple[int, int], L: int, like: Tensor,
             block_bytes: int) -> Tensor:
    """irfft(spec_u * kf)[..., :L] over a (rows, cols) batch, in cache-sized blocks on CPU.

    ``spec_u`` (1 or rows, 1 or cols, L+1), ``kf`` (1 or rows, 1 or cols, L+1).
    """
    rows, cols = batch
    n = 2 * L
    r_step, c_step = rows, cols
    if like.device.type == "cpu":
        per_block = block_bytes // ((L + 1) * kf.element_size() + n * like.element_size())
        r_step, c_step = max(1, per_block // cols), max(1, min(per_block, cols))

    def part(x: Tensor, r: int, c: int) -> Tensor:
        x = x if x.shape[0] == 1 else x[r:r + r_step]
        return x if x.shape[1] == 1 else x[:, c:c + c_step]

    out_rows = []
    for r in range(0, rows, r_step):
        row = []
        for c in range(0, cols, c_step):
            prod = part(spec_u, r, c) * part(kf, r, c)
            row.append(torch.fft.irfft(prod, n=n, dim=-1)[..., :L])
        out_rows.append(torch.cat(row, dim=1) if len(row) > 1 else row[0])
    return torch.cat(out_rows, dim=0) if len(out_rows) > 1 else out_rows[0]


__all__ = ["FFT_BLOCK_BYTES", "causal_conv", "causal_conv_fft", "fft_size", "kernel_spectrum"]
