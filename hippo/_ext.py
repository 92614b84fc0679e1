"""The one lazily built C++ library of hippo (hippo/csrc/*.cpp), loaded with ctypes.

Built on first use with ``torch.utils.cpp_extension.load`` (ninja + the C++ compiler),
cached under ``TORCH_EXTENSIONS_DIR`` (default: torch's build root) so later processes only
load it. The sources include nothing but ``<ATen/Parallel.h>`` (for ``at::parallel_for``) and
export plain C functions over raw buffers, so the build is short and no pybind module is
involved. Any build or load failure is reported once as a RuntimeWarning and :func:`load`
returns None from then on; callers fall back to plain torch.

The build passes no ``-fopenmp``, so ``at::parallel_for`` runs its range serially: each call
uses one core. That is deliberate for now: the per-step calls inside the RNN cell are ~50 us,
where OpenMP start-up and, on a shared machine, spinning threads cost more than they save
(measured: oversubscribed OpenMP slowed training by 10x and more here). Long whole-sequence
projections would gain from threads over the batch; enabling it is a flag and a measurement.

Entry points (all ``int64_t`` sizes, contiguous buffers; see the sources for the math):

- ``hippo_legs_project_f{32,64}``: whole-sequence LegS projection (hippo.project).
- ``hippo_legs_step_f{32,64}``, ``hippo_legs_step_bwd_f{32,64}``: one batched LegS step and
  its backward (hippo.legs).
- ``hippo_gate_bwd_f{32,64}``: one step of the HiPPO-RNN gate's backward (hippo.nn).
- ``hippo_sscan_fwd_f{32,64}``, ``hippo_sscan_bwd_f{32,64}``: Mamba's selective scan and its
  backward (hippo.scan, mode "compiled").
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import warnings
from pathlib import Path

import torch

_CSRC = Path(__file__).parent / "csrc"
SOURCES = (_CSRC / "legs_project.cpp", _CSRC / "legs_step.cpp", _CSRC / "selective_scan.cpp")

_lock = threading.Lock()
_state: dict = {}

_P, _I, _D = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double
_SIGNATURES = {
    # (state, f, ratio, ratio_bstride, out_all, B, L, N, alpha, init_first)
    "hippo_legs_project": [_P, _P, _P, _I, _P, _I, _I, _I, _D, ctypes.c_int],
    # (c, f, d (float64), d_stride, x, B, N, alpha)
    "hippo_legs_step": [_P, _P, _P, _I, _P, _I, _I, _D],
    # (gx, c, x, f, d (float64), d_stride, gc, gf, gd (float64), B, N, alpha)
    "hippo_legs_step_bwd": [_P, _P, _P, _P, _P, _I, _P, _P, _P, _I, _I, _D],
    # (gh, ghs, ghs_stride, du, u_h, M, act, h_prev, dz, B, H)
    "hippo_gate_bwd": [_P, _P, _I, _P, _P, _I, _P, _P, _P, _I, _I],
    # (u, delta, A, B, C, x0, y, x_last, xs, Bt, D, L, N, chunk, zoh)
    "hippo_sscan_fwd": [_P] * 9 + [_I] * 5 + [ctypes.c_int],
    # (u, delta, A, B, C, xs, gy, g_last, gu, gdelta, gA_part, gB, gC, gx0, Bt, D, L, N,
    #  chunk, zoh)
    "hippo_sscan_bwd": [_P] * 14 + [_I] * 5 + [ctypes.c_int],
}


def _build() -> ctypes.CDLL:
    # The kernels are CPU-only (with_cuda=False): torch's "No CUDA runtime is found, using
    # CUDA_HOME=..." (logged when cpp_extension is imported, on a CUDA build without a GPU)
    # says nothing a user can act on.
    quiet = logging.getLogger("torch.utils.cpp_extension")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return _compile_and_load()
    finally:
        quiet.setLevel(level)


def _compile_and_load() -> ctypes.CDLL:
    from torch.utils import cpp_extension

    name = "hippo_legs_" + torch.__version__.replace(".", "_").replace("+", "_")
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root()
    build_dir = Path(root) / name
    build_dir.mkdir(parents=True, exist_ok=True)
    path = cpp_extension.load(
        name=name,
        sources=[str(p) for p in SOURCES],
        extra_cflags=["-O3", "-Wno-psabi"],
        build_directory=str(build_dir),
        is_python_module=False,
        with_cuda=False,
    )
    lib = ctypes.CDLL(str(path) if path else str(build_dir / f"{name}.so"))
    for base, argtypes in _SIGNATURES.items():
        for suffix in ("_f32", "_f64"):
            fn = getattr(lib, base + suffix)
            fn.argtypes, fn.restype = argtypes, None
    return lib


def load():
    """Build (first use) and load the C++ library; returns the ctypes library or None."""
    lib = _state.get("lib", False)
    if lib is not False:
        return lib
    with _lock:
        if "lib" in _state:
            return _state["lib"]
        lib = None
        try:
            lib = _build()
        except Exception as err:  # any build/load failure: fall back to torch, say so once
            warnings.warn(
                f"hippo: could not build the C++ kernels (LegS, selective scan) ({type(err).__name__}: {err}); "
                "using the slower plain-torch paths",
                RuntimeWarning,
                stacklevel=3,
            )
        _state["lib"] = lib
        return lib


def cpp_available() -> bool:
    """True if the compiled C++ kernels (LegS, selective scan) build and load on this machine."""
    return load() is not None
