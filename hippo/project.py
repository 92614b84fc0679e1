"""Online HiPPO memory of whole sequences: ``project(signal, measure, N, ...)``.

``signal`` (..., L) is batched over its leading dims; the result is the memory after every
element, (..., L, N) for ``output="all"``, or only after the last one, (..., N) for
``output="last"`` (so a 1e6-step signal at N = 256 fits in memory).

LegS (time-varying): element 0 (t = 0) sets ``c = (f_0, 0, ..., 0)``; element k >= 1 takes
one LegS step with ``dt_ratio = 1/k`` (index time), or ``(t_k - t_{k-1}) / t_k`` when
``times`` (..., L) is given. Backends: a compiled C++ O(N) loop (hippo/csrc/legs_project.cpp,
built on first use by :mod:`hippo._ext` and cached in TORCH_EXTENSIONS_DIR, one thread) for CPU tensors without autograd, and a plain-torch per-step loop of the same math
(any device, differentiable) otherwise or when the build fails (one warning).

LTI measures (legt, lmu, lagt, tlagt, glagt, fout): ``c_k = Ad c_{k-1} + Bd f_k`` with
``c_{-1} = 0`` and ``(Ad, Bd) = discretize(A, B, dt, method)``. ``dt`` (time units per
element) is required: it sets how many elements a window ``theta`` spans (theta / dt). Mode
"fft" computes the kernel ``K_m = Ad^m Bd`` (m < L, by repeated squaring) and convolves it
causally with the signal via ``torch.fft.rfft``; mode "recurrent" runs the recurrence
step by step (the reference). "auto" uses fft for output="all" and recurrent for "last".
"""

from __future__ import annotations

from functools import lru_cache

import torch

from hippo import fftconv
from hippo._ext import cpp_available  # noqa: F401  (re-exported; tests, funcapprox)
from hippo._ext import load as _load_cpp
from hippo.discretize import check_dt, discretize, method_alpha
from hippo.legs import legs_alpha, legs_init, legs_step_scan
from hippo.transition import check_measure, check_order, transition

OUTPUTS = ("all", "last")
BACKENDS = ("auto", "torch", "cpp")
MODES = ("auto", "fft", "recurrent")


def _legs_cpp(lib, f, ratio, state, init_first, alpha, output):
    """Run the kernel. f (B, L) contiguous; ratio (B or 1, L); state (B, N) updated in place."""
    Bt, L = f.shape
    out = torch.empty(Bt, L, state.shape[-1], dtype=f.dtype) if output == "all" else None
    fn = lib.hippo_legs_project_f64 if f.dtype == torch.float64 else lib.hippo_legs_project_f32
    fn(
        state.data_ptr(), f.data_ptr(), ratio.data_ptr(),
        L if ratio.shape[0] > 1 else 0,
        out.data_ptr() if out is not None else None,
        Bt, L, state.shape[-1], float(alpha), int(init_first),
    )
    return out


def _legs_torch(f, ratio, state, init_first, alpha, output):
    """Per-step loop of the O(N) update. f (B, L); ratio (B or 1, L); state (B, N) or None."""
    outs = []
    c = state
    for k in range(f.shape[-1]):
        if k == 0 and init_first:
            c = legs_init(f[:, 0], state.shape[-1])
        else:
            d = ratio[:, k] if ratio.shape[0] > 1 else float(ratio[0, k])
            c = legs_step_scan(c, f[:, k], d, alpha=alpha)
        if output == "all":
            outs.append(c)
    return torch.stack(outs, dim=1) if output == "all" else c


def legs_ratios(L: int, start: int, times: torch.Tensor | None, dtype) -> torch.Tensor:
    """dt_ratio per element, shape (B or 1, L); element 0 of the whole sequence gets 1 (unused)."""
    if times is None:
        k = torch.arange(start, start + L, dtype=torch.float64).clamp(min=1)
        return (1.0 / k).to(dtype)[None]
    t = times.to(torch.float64)
    prev = torch.cat([t[:, :1], t[:, :-1]], dim=1)
    ratio = (t - prev) / t
    ratio[:, 0] = 1.0
    bad = ~((ratio > 0) & (ratio <= 1))
    bad[:, 0] = False
    if bad.any():
        raise ValueError(
            "times must be strictly increasing and positive after the first element "
            "(dt_ratio = (t_k - t_{k-1})/t_k must lie in (0, 1])"
        )
    return ratio.to(dtype).contiguous()


@lru_cache(maxsize=32)
def _lti_matrices(measure, N, dt, method, alpha, params):
    A, B = transition(measure, N, **dict(params))
    return discretize(A, B, dt, method, alpha)


def _powers(Ad: torch.Tensor, x: torch.Tensor, L: int) -> torch.Tensor:
    """(..., L, N) with entry m = x Ad^m^T, for x (..., N), by doubling: O(L N^2) in matmuls."""
    K = x[..., None, :]
    P = Ad  # Ad^m for the current length m
    while K.shape[-2] < L:
        K = torch.cat([K, K @ P.T], dim=-2)
        P = P @ P
    return K[..., :L, :].contiguous()


@lru_cache(maxsize=4)
def _lti_kernel(measure, N, dt, method, alpha, params, L):
    """K (L, N) float64 with K_m = Ad^m Bd."""
    Ad, Bd = _lti_matrices(measure, N, dt, method, alpha, params)
    return _powers(Ad, Bd, L)


@lru_cache(maxsize=4)
def _lti_kernel_fft(measure, N, dt, method, alpha, params, L, dtype=torch.complex128,
                    device="cpu"):
    """rfft of the kernel zero-padded to 2L, (N, L+1), cached per dtype and device."""
    K = _lti_kernel(measure, N, dt, method, alpha, params, L)
    return torch.fft.rfft(K.T.contiguous(), n=2 * L, dim=-1).to(dtype=dtype, device=device)


# CPU block size of the FFT convolution (hippo.fftconv, where the reason is explained); read
# at call time, so it can be changed here.
FFT_BLOCK_BYTES = fftconv.FFT_BLOCK_BYTES


def _causal_conv_fft(f: torch.Tensor, kernel_fft: torch.Tensor, L: int) -> torch.Tensor:
    """Causal convolution of signals ``f`` (B, L) with N kernels given by their spectra
    ``kernel_fft`` (N, L+1) (rfft at n = 2L): (B, L, N), a transposed view of (B, N, L), with
    ``out[b, k, n] = sum_{m<=k} K_n[m] f[b, k-m]``. One implementation:
    :func:`hippo.fftconv.causal_conv_fft` (blocked inverse transforms on CPU)."""
    out = fftconv.causal_conv_fft(f[:, None, :], kernel_fft, block_bytes=FFT_BLOCK_BYTES)
    return out.transpose(1, 2)


@lru_cache(maxsize=4)
def _lti_power(measure, N, dt, method, alpha, params, L):
    """Ad^L, float64."""
    Ad, _ = _lti_matrices(measure, N, dt, method, alpha, params)
    return torch.linalg.matrix_power(Ad, L)


def lti_kernel(measure: str, N: int, L: int, *, dt: float, method: str = "bilinear",
               gbt_alpha: float | None = None, **params) -> torch.Tensor:
    """The convolution kernel ``K_m = Ad^m Bd``, shape (L, N), float64 (cached)."""
    return _lti_kernel(measure, N, check_dt(dt), method, gbt_alpha,
                       tuple(sorted(params.items())), L)


def project(
    signal: torch.Tensor,
    measure: str,
    N: int,
    *,
    dt: float | None = None,
    method: str = "bilinear",
    gbt_alpha: float | None = None,
    times: torch.Tensor | None = None,
    output: str = "all",
    mode: str = "auto",
    backend: str = "auto",
    initial: torch.Tensor | None = None,
    start: int = 0,
    **params,
) -> torch.Tensor:
    """The HiPPO memory of ``signal`` (..., L) after each element (see module docstring).

    - ``dt``: step in time units; required for LTI measures, ignored-not-allowed for legs.
    - ``method``: discretisation (bilinear default; zoh LTI only); ``gbt_alpha`` in [0, 1]
      is the alpha of method "gbt" (named so it cannot clash with glagt's ``alpha``).
    - ``times`` (..., L): legs only, timestamps (> 0 after element 0, increasing).
    - ``output``: "all" -> (..., L, N); "last" -> (..., N).
    - ``mode``: LTI only, "fft" | "recurrent" | "auto".
    - ``backend``: legs only, "cpp" | "torch" | "auto" (cpp for CPU tensors without grad).
    - ``initial`` (..., N) and ``start``: continue from a memory state, for processing a long
      signal in chunks. For legs, ``start`` is the index of signal[..., 0] in the whole
      sequence (index time; element 0 of the whole sequence initialises). For LTI measures
      ``initial`` is ``c_{-1}``.
    - ``**params``: measure parameters (theta, beta, alpha; see :mod:`hippo.transition`).
    """
    check_measure(measure)
    N = check_order(N)
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    if not isinstance(signal, torch.Tensor) or signal.ndim < 1:
        raise ValueError("signal must be a tensor of shape (..., L) with L >= 1")
    if not signal.is_floating_point():
        signal = signal.to(torch.get_default_dtype())
    batch, L = signal.shape[:-1], signal.shape[-1]
    if L < 1:
        raise ValueError("signal has length 0; need L >= 1")
    if initial is not None and initial.shape != (*batch, N):
        raise ValueError(
            f"initial must have shape {(*batch, N)} (signal's batch dims + N), "
            f"got {tuple(initial.shape)}"
        )
    f = signal.reshape(-1, L)
    state = None if initial is None else initial.reshape(-1, N).to(signal.dtype)
    if measure == "legs":
        out = _project_legs(f, N, dt, method, gbt_alpha, times, output, backend, state, start,
                            batch, params)
    else:
        if start:
            raise ValueError(f"start is only used by legs; {measure!r} is time-invariant "
                             "(continue a chunked run with initial alone)")
        out = _project_lti(f, measure, N, dt, method, gbt_alpha, times, output, mode, state,
                           params)
    return out.reshape(*batch, L, N) if output == "all" else out.reshape(*batch, N)


def _project_legs(f, N, dt, method, alpha, times, output, backend, state, start, batch,
                  params):
    if params:
        raise ValueError(f"measure 'legs' takes no parameters, got {sorted(params)}")
    if dt is not None:
        raise ValueError("dt is not used by legs (its step is dt_ratio = 1/k or from times); "
                         "drop dt, or pass times")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    a = legs_alpha(method, alpha)
    L = f.shape[-1]
    if not isinstance(start, int) or start < 0:
        raise ValueError(f"start must be an int >= 0, got {start!r}")
    if times is not None:
        if times.shape != (*batch, L):
            raise ValueError(f"times must have the signal's shape {(*batch, L)}, "
                             f"got {tuple(times.shape)}")
        if state is not None or start:
            raise ValueError("times cannot be combined with initial/start; pass the whole "
                             "sequence")
    init_first = start == 0
    if init_first and state is not None:
        # element 0 of a whole sequence sets the memory to (f_0, 0, ..., 0): a state would be lost
        raise ValueError("initial needs start > 0 for legs (the index of signal[..., 0] in the "
                         "whole sequence); element 0 re-initialises the memory")
    if state is None:
        if not init_first:
            raise ValueError("start > 0 needs initial (the memory after element start-1)")
        state = torch.zeros(f.shape[0], N, dtype=f.dtype, device=f.device)
    ratio = legs_ratios(L, start, None if times is None else times.reshape(-1, L), f.dtype)
    ratio = ratio.to(f.device)
    needs_grad = torch.is_grad_enabled() and (f.requires_grad or state.requires_grad)
    cpu_ok = f.device.type == "cpu" and f.dtype in (torch.float32, torch.float64)
    if backend == "cpp" and not (cpu_ok and not needs_grad):
        raise ValueError("backend='cpp' needs a float32/float64 CPU tensor without autograd")
    lib = _load_cpp() if backend == "cpp" or (backend == "auto" and cpu_ok and not needs_grad) \
        else None
    if lib is not None:
        f = f.contiguous()
        state = state.clone().contiguous()
        out = _legs_cpp(lib, f, ratio.contiguous(), state, init_first, a, output)
        return out if output == "all" else state
    if backend == "cpp":
        raise RuntimeError("backend='cpp' requested but the C++ kernel failed to build")
    return _legs_torch(f, ratio, state, init_first, a, output)


def _project_lti(f, measure, N, dt, method, alpha, times, output, mode, state, params):
    if times is not None:
        raise ValueError(f"times is only supported for legs; {measure!r} is time-invariant "
                         "(use dt)")
    if dt is None:
        raise ValueError(f"dt is required for the time-invariant measure {measure!r} "
                         "(time units per element; e.g. dt = theta / L for a window of L)")
    dt = check_dt(dt)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    method_alpha(method, alpha)
    key = (measure, N, dt, method, alpha, tuple(sorted(params.items())))
    Ad, Bd = (m.to(f) for m in _lti_matrices(*key))
    if mode == "auto":
        mode = "fft" if output == "all" else "recurrent"
    L = f.shape[-1]
    if mode == "recurrent":
        c = torch.zeros(f.shape[0], N, dtype=f.dtype, device=f.device) if state is None else state
        outs = []
        AdT = Ad.T.contiguous()
        for k in range(L):
            c = c @ AdT + f[:, k, None] * Bd
            if output == "all":
                outs.append(c)
        return torch.stack(outs, dim=1) if output == "all" else c
    K = _lti_kernel(*key, L).to(f)
    if output == "last":
        # only the last element: c_{L-1} = sum_m K_m f_{L-1-m}, one matmul, no FFT needed
        out = f.flip(-1) @ K
        if state is not None:  # plus the free response Ad^L c_{-1}
            out = out + state @ _lti_power(*key, L).to(f).T
        return out
    # torch's FFTs take float32/float64 (CPU), so half precision convolves in float32
    work = f if f.dtype in (torch.float32, torch.float64) else f.float()
    complex_dtype = torch.complex128 if work.dtype == torch.float64 else torch.complex64
    out = _causal_conv_fft(work, _lti_kernel_fft(*key, L, complex_dtype, f.device), L).to(f.dtype)
    if state is not None:  # free response Ad^(k+1) c_{-1} for every k
        out = out + _powers(Ad, state @ Ad.T, L)
    return out
