"""Linear solves that stay correct under ``torch.set_num_threads(n > 1)`` on CPU.

PyTorch factors a batch of matrices on CPU by calling LAPACK ``getrf`` once per matrix from the
threads of a parallel loop. With MKL, once a process has called ``torch.set_num_threads(n)``
with ``n > 1`` (as a worker given its share of cores does), concurrent ``getrf`` calls on
matrices larger than about 14 x 14 corrupt their pivots ("Intel oneMKL ERROR: Parameter 6 was
incorrect on entry to DLASWP") and can hang for good: pytorch/pytorch issues 141358 and 142815,
reproduced here with torch 2.14.1 on a (2, 256, 256) float64 batch. A single matrix is safe, and
so is one thread, so :func:`solve` loops over the batch exactly when the bug can strike.
"""

from __future__ import annotations

import torch
from torch import Tensor


def solve(A: Tensor, B: Tensor) -> Tensor:
    """``X`` with ``A X = B``: ``A`` (..., N, N), ``B`` (..., N, K) -> (..., N, K). Differentiable.

    The batch dimensions broadcast as in :func:`torch.linalg.solve`. One ``A`` shared by the
    batch (broadcast or expanded, stride 0) is factored once. Otherwise, on CPU with MKL and more
    than one intra-op thread, the batch is solved one matrix at a time (module docstring).
    """
    if B.ndim < 2 or A.ndim < 2 or A.shape[-1] != A.shape[-2] or B.shape[-2] != A.shape[-1]:
        raise ValueError(f"solve: A must be (..., N, N) and B (..., N, K), got shapes "
                         f"{tuple(A.shape)} and {tuple(B.shape)}")
    batch = torch.broadcast_shapes(A.shape[:-2], B.shape[:-2])
    n, k = B.shape[-2:]
    B = B.expand(*batch, n, k)  # never read as a batch of vectors, whatever the shapes
    if batch.numel() > 1 and all(s == 0 or d == 1 for s, d in zip(A.stride()[:-2], A.shape[:-2], strict=True)):
        # one matrix (broadcast or expanded) for the whole batch: factor it once and solve every
        # right-hand side as a column of one (N, batch * K) system
        cols = B.reshape(-1, n, k).transpose(0, 1).reshape(n, -1)
        X = torch.linalg.solve(A[(0,) * (A.ndim - 2)], cols)
        return X.view(n, -1, k).transpose(0, 1).reshape(*batch, n, k)
    racy = A.device.type == "cpu" and torch.backends.mkl.is_available()
    if not racy or torch.get_num_threads() == 1 or batch.numel() <= 1:
        return torch.linalg.solve(A, B)  # at most one matrix, or nothing to race
    As = A.expand(*batch, n, n).reshape(-1, n, n)
    return torch.stack([torch.linalg.solve(a, b) for a, b in zip(As, B.reshape(-1, n, k),
                                                                  strict=True)]).view(*batch, n, k)
