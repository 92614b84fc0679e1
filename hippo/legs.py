"""HiPPO-LegS: one online update of the scaled-Legendre memory, in O(N) per step.

LegS dynamics are ``c' = A c / t + B f / t`` (A, B from ``transition("legs", N)``). A step
from ``t0`` to ``t1`` is discretised with the effective step ``d = (t1 - t0) / t1`` (the
"dt_ratio"; with index time, step k = 1, 2, ... has d = 1/k) by the GBT family:

    c1 = (I - alpha d A)^-1 [(I + (1 - alpha) d A) c0 + d B f]

alpha = 0 forward Euler, 1/2 bilinear, 1 backward Euler.

Why O(N): with ``s_n = sqrt(2n+1)``, ``A = -S Lstrict S - diag(n+1)`` (``Lstrict`` strictly
lower ones), so ``A c = -s * exclusive_cumsum(s * c) - (n+1) * c``. The solve
``(I - e A) x = r`` (e = alpha d) is the first-order recurrence over n

    R_0 = 0,  x_n = (r_n - e s_n R_n) / (1 + e(n+1)),
    R_{n+1} = a_n R_n + s_n r_n / (1 + e(n+1)),   a_n = (1 - e n) / (1 + e(n+1)),

where ``R_n = sum_{j<n} s_j x_j``. ``|a_n| < 1`` for every e > 0, so evaluating it as a scan
is stable. (Dividing cumulative products of a_n instead is not: they underflow or hit exact
zeros, e.g. a_2 = 0 at e = 1/2.)

Backward (the adjoint, for the compiled kernel): with ``y = (I - e A)^-T g`` (upper
triangular, same rank-1 structure: the reverse recurrence ``y_n = (g_n - e s_n Q_n) / (1 +
e(n+1))``, ``Q_n = sum_{j>n} s_j y_j``), ``dL/dc = y + (1 - alpha) d A^T y`` with
``A^T y = -s * Q - (n+1) y``, ``dL/df = d s.y`` and ``dL/dd = (A^T y).((1 - alpha) c + alpha
x) + f s.y``.

Backends of :func:`legs_step` (one rule, by device and dtype):

- float32/float64 CPU tensors (c and f of one dtype), when the C++ extension builds:
  :func:`legs_step_cpp`, the compiled O(N) step and its O(N) backward
  (hippo/csrc/legs_step.cpp, built lazily by :mod:`hippo._ext`; single-threaded (see there),
  8 series interleaved per SIMD block, recurrences in float64 even for float32 storage).
  ``dt_ratio`` a float (shared) or a per-series tensor, with gradients for c, f and a tensor
  dt_ratio. Differentiable once (no double backward).
- anything else (CUDA, other dtypes, or the build failed: one RuntimeWarning): a float
  ``dt_ratio`` multiplies by cached dense step matrices (built once per (N, dt_ratio, dtype,
  device) from the exact solve, LRU-bounded by :data:`CACHE_BYTES`); a tensor ``dt_ratio``
  uses :func:`legs_step_scan`, the recurrence as a log-depth (Hillis-Steele) scan of affine
  maps, ceil(log2 N) vectorised levels, differentiable to any order.

Speed (measured on a shared 2-core CPU, torch 2.14, c (100, 256) float32, 182 chained steps
forward + backward through autograd, median of 7, range over two runs at different machine
load): C++ step 31-36 ms (float dt_ratio) and 34-40 ms (per-series tensor), cached dense
44-53 ms, scan 160-220 ms. (Under heavier load the dense and scan paths were seen at ~0.3 s
and ~1.4 s.) The
kernel alone is ~48 us forward and ~46 us backward per step (B = 100, N = 256). Float32
accuracy: C++ ~5e-8 relative to the float64 dense reference; the float32 scan ~2e-5 at
N = 256.
"""

from __future__ import annotations

import os
from collections import OrderedDict

import torch
import torch.nn.functional as F

from hippo import _ext
from hippo.discretize import method_alpha
from hippo.linalg import solve
from hippo.transition import transition

LEGS_METHODS = ("forward_euler", "backward_euler", "bilinear", "gbt")

# Upper bound on the memory held by cached per-step matrices (bytes; env HIPPO_LEGS_CACHE_BYTES).
# It must hold a whole sequence's matrices, or every forward pass rebuilds them all: permuted
# MNIST at hidden 512 needs 783 float32 (512, 512) matrices, 784 MiB (the dense path is the
# CUDA / no-compiler fallback; the CPU path is the O(N) kernel and caches nothing).
CACHE_BYTES = int(os.environ.get("HIPPO_LEGS_CACHE_BYTES", 2 * 2**30))
_cache: OrderedDict = OrderedDict()
_cache_bytes = 0


def step_matrices(
    N: int, dt_ratio: float, alpha: float, dtype: torch.dtype, device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(M^T, v)`` of one LegS step ``c1 = M c0 + v f`` (float64 solve, cast), LRU-cached."""
    global _cache_bytes
    key = (N, float(dt_ratio), float(alpha), dtype, str(device))
    hit = _cache.get(key)
    if hit is not None:
        _cache.move_to_end(key)
        return hit
    A, B = transition("legs", N)
    eye = torch.eye(N, dtype=torch.float64)
    d = float(dt_ratio)
    rhs = torch.cat([eye + (1 - alpha) * d * A, (d * B)[:, None]], dim=1)
    # I - alpha d A is lower triangular: a triangular solve is exact and cheap.
    sol = torch.linalg.solve_triangular(eye - alpha * d * A, rhs, upper=False)
    entry = (
        sol[:, :N].T.to(dtype=dtype, device=device).contiguous(),
        sol[:, N].to(dtype=dtype, device=device).contiguous(),
    )
    size = entry[0].numel() * entry[0].element_size()
    _cache[key] = entry
    _cache_bytes += size
    while _cache_bytes > CACHE_BYTES and len(_cache) > 1:
        _, old = _cache.popitem(last=False)
        _cache_bytes -= old[0].numel() * old[0].element_size()
    return entry


def legs_alpha(method: str, alpha: float | None = None) -> float:
    """GBT alpha for a LegS update; zoh is not offered (the system is time-varying)."""
    a = method_alpha(method, alpha)
    if a is None:
        raise ValueError(
            f"method {method!r} is not available for LegS; use one of {', '.join(LEGS_METHODS)}"
        )
    return a


def _dt_column(dt_ratio, f: torch.Tensor) -> torch.Tensor | float:
    """dt_ratio as a float, or as a tensor broadcastable to f with a trailing axis for N."""
    if isinstance(dt_ratio, torch.Tensor):
        if dt_ratio.ndim == 0 and not dt_ratio.requires_grad:
            return float(dt_ratio)
        try:
            torch.broadcast_shapes(dt_ratio.shape, f.shape)
        except RuntimeError:
            raise ValueError(
                f"dt_ratio of shape {tuple(dt_ratio.shape)} does not broadcast to f's shape "
                f"{tuple(f.shape)}"
            ) from None
        return dt_ratio.to(f.dtype)[..., None]
    return float(dt_ratio)


def _shift(x: torch.Tensor, k: int, fill: float = 0.0) -> torch.Tensor:
    """x shifted right by k along the last axis (entries n >= k get x[n-k]), filled at the start."""
    return F.pad(x[..., :-k], (k, 0), value=fill)


def affine_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Inclusive scan of ``y_n = a_n y_{n-1} + b_n`` with ``y_{-1} = 0``, over the last axis.

    ``a`` and ``b`` broadcast together; log-depth (Hillis-Steele), differentiable.
    """
    N = b.shape[-1]
    k = 1
    while k < N:
        b = b + a * _shift(b, k)
        if 2 * k < N:  # the last level's composed multiplier is never used
            a = a * _shift(a, k, fill=1.0)
        k *= 2
    return b


def legs_init(f: torch.Tensor, N: int) -> torch.Tensor:
    """The LegS memory at t = 0: the projection of the constant f, ``(f, 0, ..., 0)``.

    ``f`` (...,) -> (..., N). Differentiable.
    """
    return F.pad(f[..., None], (0, N - 1))


class _LegsStepCpp(torch.autograd.Function):
    """The compiled O(N) LegS step (hippo/csrc/legs_step.cpp) with its hand-written backward.

    ``c`` (B, N), ``f`` (B,) of one dtype (float32/float64, CPU); ``d`` float64, (B,) per
    series or (1,) shared; ``alpha`` the GBT alpha. Backward gives dL/dc, dL/df and, when ``d``
    requires grad, dL/dd; it is not itself differentiable (no double backward).
    """

    @staticmethod
    def forward(ctx, c, f, d, alpha):
        lib = _ext.load()
        c, f, d = c.contiguous(), f.contiguous(), d.contiguous()
        B, N = c.shape
        x = torch.empty_like(c)
        fn = lib.hippo_legs_step_f64 if c.dtype == torch.float64 else lib.hippo_legs_step_f32
        fn(c.data_ptr(), f.data_ptr(), d.data_ptr(), 1 if d.numel() > 1 else 0, x.data_ptr(),
           B, N, float(alpha))
        want_dd = ctx.needs_input_grad[2]
        ctx.save_for_backward(c, f, d, x if want_dd else None)
        ctx.alpha = float(alpha)
        return x

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gx):
        lib = _ext.load()
        c, f, d, x = ctx.saved_tensors
        gx = gx.contiguous()
        B, N = c.shape
        gc = torch.empty_like(c)
        gf = torch.empty_like(f)
        gd = torch.empty(B, dtype=torch.float64) if x is not None else None
        fn = lib.hippo_legs_step_bwd_f64 if c.dtype == torch.float64 \
            else lib.hippo_legs_step_bwd_f32
        fn(gx.data_ptr(), c.data_ptr(), x.data_ptr() if x is not None else None, f.data_ptr(),
           d.data_ptr(), 1 if d.numel() > 1 else 0, gc.data_ptr(), gf.data_ptr(),
           gd.data_ptr() if gd is not None else None, B, N, ctx.alpha)
        if gd is not None and d.numel() != B:  # a shared d (B > 1 series, one ratio)
            gd = gd.sum().reshape(1)
        return gc, gf, gd, None


def _use_cpp(c: torch.Tensor, f: torch.Tensor) -> bool:
    """The compiled step applies to float32/float64 CPU tensors of one dtype, if it builds."""
    return (
        c.device.type == "cpu"
        and f.device.type == "cpu"
        and c.dtype in (torch.float32, torch.float64)
        and f.dtype == c.dtype
        and c.shape[-1] > 0
        and _ext.load() is not None
    )


def legs_step_cpp(c: torch.Tensor, f: torch.Tensor, dt_ratio, *, alpha: float = 0.5):
    """The compiled O(N) LegS update (GBT ``alpha``); float32/float64 CPU tensors only.

    Same arguments as :func:`legs_step_scan`; differentiable (once) w.r.t. c, f and a tensor
    ``dt_ratio``. Raises RuntimeError if the extension is unavailable.
    """
    if _ext.load() is None:
        raise RuntimeError("the C++ LegS kernels are not available (build failed)")
    N = c.shape[-1]
    f = f.to(c.dtype)
    d = _dt_column(dt_ratio, f)
    batch = c.shape[:-1]
    if isinstance(d, torch.Tensor):
        d = d[..., 0].to(torch.float64)
        if f.shape != batch or d.shape != batch:
            batch = torch.broadcast_shapes(batch, f.shape, d.shape)
            d = d.expand(batch)
    else:
        if f.shape != batch:
            batch = torch.broadcast_shapes(batch, f.shape)
        d = torch.tensor([d], dtype=torch.float64)
    # the common case, c (B, N) and f (B,), adds no view/expand nodes to the graph
    if c.shape[:-1] != batch:
        c = c.expand(*batch, N)
    if f.shape != batch:
        f = f.expand(batch)
    if len(batch) != 1:
        c, f = c.reshape(-1, N), f.reshape(-1)
        d = d.reshape(-1) if d.ndim else d.reshape(1)
    return _LegsStepCpp.apply(c, f, d, alpha).view(*batch, N) if len(batch) != 1 \
        else _LegsStepCpp.apply(c, f, d, alpha)


def legs_step(
    c: torch.Tensor,
    f: torch.Tensor,
    dt_ratio,
    *,
    method: str = "bilinear",
    alpha: float | None = None,
) -> torch.Tensor:
    """One batched LegS update in O(N): ``c`` (..., N) at t0 -> c at t1, with input ``f`` (...,).

    ``dt_ratio = (t1 - t0) / t1`` in (0, 1]: a float, or a tensor broadcastable to ``f``'s shape
    (a float is range-checked; a tensor is not, since that would synchronise the device
    every step).
    ``method``: bilinear (default), forward_euler, backward_euler, or gbt with ``alpha``.
    Works for any float dtype and device; differentiable w.r.t. c, f (and a tensor dt_ratio).
    Backend (module docstring): the compiled kernel for float32/float64 CPU tensors (once
    differentiable), else cached dense matrices for a float ``dt_ratio`` and the scan for a
    tensor one (any order of derivatives).
    """
    a = legs_alpha(method, alpha)
    N = c.shape[-1]
    d = _dt_column(dt_ratio, f)
    if not isinstance(d, torch.Tensor):
        check_ratio(d)
    if _use_cpp(c, f):
        return legs_step_cpp(c, f, dt_ratio if isinstance(d, torch.Tensor) else d, alpha=a)
    if not isinstance(d, torch.Tensor):
        MT, v = step_matrices(N, d, a, c.dtype, c.device)
        return c @ MT + f[..., None] * v
    return legs_step_scan(c, f, dt_ratio, alpha=a)


def check_ratio(d: float) -> float:
    """dt_ratio = (t1 - t0)/t1 must lie in (0, 1]."""
    if not 0.0 < d <= 1.0:
        raise ValueError(f"dt_ratio = (t1 - t0)/t1 must be in (0, 1], got {d}")
    return d


def legs_step_scan(c: torch.Tensor, f: torch.Tensor, dt_ratio, *, alpha: float = 0.5):
    """The O(N) LegS update (GBT ``alpha``) via exclusive cumsum and a log-depth scan.

    Same as :func:`legs_step` but always matrix-free; ``dt_ratio`` a float or a tensor
    broadcastable to f.
    """
    a = alpha
    N = c.shape[-1]
    d = _dt_column(dt_ratio, f)
    n = torch.arange(N, dtype=c.dtype, device=c.device)
    s = torch.sqrt(2 * n + 1)
    sc = s * c
    Ac = -s * _shift(torch.cumsum(sc, dim=-1), 1) - (n + 1) * c
    r = c + ((1 - a) * d) * Ac + (d * f[..., None]) * s
    if a == 0.0:
        return r
    e = a * d
    inv = 1.0 / (1 + e * (n + 1))
    coef = (1 - e * n) * inv
    R = affine_scan(coef, s * r * inv)  # R[n] = R_{n+1} (inclusive)
    return (r - e * s * _shift(R, 1)) * inv


def legs_step_dense(
    c: torch.Tensor,
    f: torch.Tensor,
    dt_ratio,
    *,
    method: str = "bilinear",
    alpha: float | None = None,
) -> torch.Tensor:
    """Reference LegS update: build the dense (N, N) matrices and solve, O(N^3) per step.

    Same arguments and result as :func:`legs_step`.
    """
    a = legs_alpha(method, alpha)
    N = c.shape[-1]
    A, B = transition("legs", N)
    A, B = A.to(c), B.to(c)
    d = _dt_column(dt_ratio, f)
    if isinstance(d, torch.Tensor):
        d = d[..., None]  # (..., 1, 1) against the (N, N) matrices
    eye = torch.eye(N, dtype=c.dtype, device=c.device)
    rhs = (eye + (1 - a) * d * A) @ c[..., None] + (d * f[..., None, None]) * B[:, None]
    lhs = (eye - a * d * A).expand(*rhs.shape[:-2], N, N)
    return solve(lhs, rhs)[..., 0]
