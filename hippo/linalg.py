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

    The batch dimensions broadcast as in :func:`torch.linalg.solve`. On CPU with more than one
    intra-op thread the batch is solved one matrix at a time (see the module docstring).
    """
    if B.ndim < 2:
        raise ValueError(f"solve: B must be (..., N, K), got shape {tuple(B.shape)}")
    batch = torch.broadcast_shapes(A.shape[:-2], B.shape[:-2])
    if A.device.type != "cpu" or torch.get_num_threads() == 1 or batch.numel() <= 1:
        return torch.linalg.solve(A, B)  # at most one matrix, or no CPU threads to race
    n, k = B.shape[-2:]
    As = A.expand(*batch, n, n).reshape(-1, n, n)
    Bs = B.expand(*batch, n, k).reshape(-1, n, k)
    return torch.stack([torch.linalg.solve(a, b) for a, b in zip(As, Bs, strict=True)]).view(
        *batch, n, k
    )
