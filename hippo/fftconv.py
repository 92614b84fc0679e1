"""Causal convolution via FFTs: the one implementation hippo uses (LTI memories in
:mod:`hippo.project`, learned state-space kernels in :mod:`hippo.ssm` and the deep models).

``causal_conv(u, kernel)``: ``y[..., k] = sum_{m <= k} kernel[..., m] u[..., k - m]`` for
``u`` (..., L) and ``kernel`` (..., Lk) (leading dims broadcast; taps past L are unused). Both
are zero-padded to ``n = 2L`` so that the circular convolution of the FFT is the causal one.

``causal_conv_fft(u, kernel_fft)`` takes the kernel's spectrum instead (``rfft(kernel, n=2L)``,
(..., L+1) complex; :func:`kernel_spectrum`), for callers that reuse one fixed kernel across
calls (hippo.project caches it per hashable configuration). Learned kernels must not be cached
(their values change at every optimiser step): call :func:`causal_conv` with the kernel itself.

No caching here. Differentiable in ``u`` and in the kernel (torch.fft has autograd).

CPU: the inverse transforms run in blocks of about :data:`FFT_BLOCK_BYTES` over the first and
the last batch dimension, joined with ``torch.cat`` (a slice write into a preallocated tensor
would make backward copy the whole gradient per block). One (B, N, 2L) product spectrum and its
inverse would stream several arrays of B * N * 2L elements through main memory and page-fault
them in when freshly allocated; blocks of a few MiB stay in cache (4x faster at N = 256,
L = 4096 on the reference machine). On other devices: one call.

Half precision (and other dtypes torch's CPU FFT does not take) convolves in float32 and is
cast back.
"""

from __future__ import annotations

import torch
from torch import Tensor

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


def causal_conv(u: Tensor, kernel: Tensor) -> Tensor:
    """Causal convolution of ``u`` (..., L) with ``kernel`` (..., Lk), leading dims broadcast.

    Returns (broadcast(...), L) in ``u``'s dtype (see the module docstring).
    """
    if u.ndim < 1 or kernel.ndim < 1:
        raise ValueError("u and kernel need a last (time) dimension")
    L = u.shape[-1]
    work = u if u.dtype in _FFT_DTYPES else u.float()
    k = kernel.to(work.dtype) if kernel.dtype != work.dtype else kernel
    return causal_conv_fft(work, kernel_spectrum(k, L)).to(u.dtype)


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


__all__ = ["FFT_BLOCK_BYTES", "causal_conv", "causal_conv_fft", "kernel_spectrum"]
