"""Online function approximation: how well a fixed-size memory keeps a long signal's history.

The signal is seeded band-limited white noise of ``length`` samples. Time unit: the whole
signal spans 1 time unit (sample j at ``j / length``), and ``freq`` is the cutoff in cycles
per whole signal (Fourier components above it are zeroed; the rest get unit-variance
Gaussian amplitudes; the result is scaled to unit RMS). It is fed to the memory online with
``project(output="last")`` in chunks that end at each checkpoint; at a checkpoint after k
samples the history is reconstructed from the coefficients (at up to ``eval_points`` evenly
spread samples) and compared with the true samples:

- legs: the whole history [0, k).
- legt, lmu, fout: the window of ``theta`` time units behind now (samples before 0 are 0).
- lagt, tlagt, glagt: the last ``horizon`` time units (default theta-free: the whole
  history, capped by what has been seen).

LTI measures use ``dt = 1 / length`` (one sample per step, in the time unit above), so the
default ``theta = 1`` window covers the whole signal at the end.

CLI: ``python -m hippo.funcapprox --measure legs --N 256 --length 1000000 --seed 0 [--json]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from hippo.project import cpp_available, project
from hippo.reconstruct import LAGUERRE, evaluate
from hippo.transition import MEASURES, check_measure, check_order, resolve_params

# Bump when a change alters what approximate_function measures: run records hash it.
CODE_VERSION = "2"  # 2: fout matrices fixed
CHUNK = 16384  # max samples per project() call for LTI measures (bounds the kernel's memory)
LEGS_CHUNK = 1 << 20


def bandlimited_noise(length: int, freq: float = 20.0, seed: int = 0) -> np.ndarray:
    """Seeded band-limited white noise, float64 (length,), unit RMS.

    ``freq``: cutoff in cycles per whole signal (must be >= 1 and < length / 2).
    """
    if length < 2:
        raise ValueError(f"length must be >= 2, got {length}")
    if not 1 <= freq < length / 2:
        raise ValueError(f"freq must be in [1, length/2), got {freq}")
    rng = np.random.default_rng(seed)
    n_bins = length // 2 + 1
    spec = rng.standard_normal(n_bins) + 1j * rng.standard_normal(n_bins)
    spec[np.arange(n_bins) > freq] = 0.0
    spec[0] = spec[0].real  # a real DC term
    x = np.fft.irfft(spec, n=length)
    return x / np.sqrt(np.mean(x**2))


@dataclass
class FuncApproxResult:
    measure: str
    N: int
    length: int
    method: str
    mse: float
    mse_at: dict[int, float] = field(default_factory=dict)
    steps_per_s: float = 0.0
    seconds: float = 0.0
    backend: str = "torch"


def _history_mse(c, signal, k, measure, dt, eval_points, params) -> float:
    """MSE of the reconstruction from c (N,) after k samples (see module docstring)."""
    M = min(k, eval_points)
    if measure == "legs":
        idx = np.unique(np.round(np.linspace(0, k - 1, M)).astype(np.int64))
        x = torch.from_numpy(idx / max(k - 1, 1))
        truth = signal[idx]
        return float(((evaluate(c, measure, x) - truth) ** 2).mean())
    span = params.get("theta", 1.0) if measure not in LAGUERRE else params.get("horizon", 1.0)
    span = min(span, (k - 1) * dt) if measure in LAGUERRE else span
    steps = span / dt
    pos = np.linspace(0, 1, M)
    idx = np.round(k - 1 - steps * (1 - pos)).astype(np.int64)
    truth = torch.where(torch.from_numpy(idx >= 0), signal[np.clip(idx, 0, None)], 0.0)
    x = torch.from_numpy(1 - (k - 1 - idx) / steps)
    horizon = {"horizon": span} if measure in LAGUERRE else {}
    mparams = {k_: v for k_, v in params.items() if k_ != "horizon"}
    approx = evaluate(c, measure, x, **horizon, **mparams)
    return float(((approx - truth) ** 2).mean())


def approximate_function(
    measure: str = "legs",
    N: int = 256,
    length: int = 1_000_000,
    *,
    method: str = "bilinear",
    seed: int = 0,
    checkpoints: tuple[int, ...] = (1_000, 10_000, 100_000),
    dtype: torch.dtype = torch.float64,
    freq: float = 20.0,
    eval_points: int = 10_000,
    **params,
) -> FuncApproxResult:
    """Feed seeded band-limited noise of ``length`` samples to a ``measure`` memory online.

    ``checkpoints``: sample counts at which to measure the history MSE (those > length are
    dropped; ``length`` itself is always one). ``params``: measure parameters, plus
    ``horizon`` (time units) for the Laguerre measures. Returns a :class:`FuncApproxResult`;
    ``steps_per_s`` counts only the memory updates.
    """
    check_measure(measure)
    check_order(N)
    horizon = params.pop("horizon", None)
    resolve_params(measure, params)
    # untimed warm-up: the first call in a process may load or build the C++ extension
    warm = torch.zeros(1, 16, dtype=dtype)
    if measure == "legs":
        project(warm, "legs", N, method=method, output="last")
    else:
        project(warm, measure, N, dt=1.0 / length, method=method, output="last", mode="fft", **params)
    t_start = time.perf_counter()
    signal = torch.from_numpy(bandlimited_noise(length, freq, seed))
    stops = sorted({int(k) for k in checkpoints if 0 < int(k) < length} | {length})
    dt = 1.0 / length
    backend = "cpp" if measure == "legs" and cpu_available_for(dtype) else "torch"
    c = None
    done = 0
    update_s = 0.0
    mse_at: dict[int, float] = {}
    eval_params = dict(params, **({"horizon": horizon} if horizon is not None else {}))
    if measure in LAGUERRE and horizon is None:
        eval_params["horizon"] = 1.0
    for stop in stops:
        while done < stop:
            step = min(stop - done, LEGS_CHUNK if measure == "legs" else CHUNK)
            chunk = signal[done:done + step].to(dtype)
            t0 = time.perf_counter()
            if measure == "legs":
                c = project(chunk, "legs", N, method=method, output="last", initial=c,
                            start=done)
            else:
                c = project(chunk, measure, N, dt=dt, method=method, output="last",
                            initial=c, mode="fft", **params)
            update_s += time.perf_counter() - t0
            done += step
        mse_at[stop] = _history_mse(c.to(torch.float64), signal, stop, measure, dt,
                                    eval_points, eval_params)
    return FuncApproxResult(
        measure=measure, N=N, length=length, method=method, mse=mse_at[length],
        mse_at=mse_at, steps_per_s=length / update_s if update_s > 0 else float("inf"),
        seconds=time.perf_counter() - t_start, backend=backend,
    )


def cpu_available_for(dtype: torch.dtype) -> bool:
    """Whether project() will take the C++ path for a CPU signal of this dtype."""
    return dtype in (torch.float32, torch.float64) and cpp_available()


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not the usage block
        sys.exit(f"hippo.funcapprox: error: {message}")


def main(argv=None) -> int:
    ap = _Parser(prog="python -m hippo.funcapprox", description=__doc__.splitlines()[0])
    ap.add_argument("--measure", default="legs", choices=MEASURES)
    ap.add_argument("--N", type=int, default=256)
    ap.add_argument("--length", type=int, default=1_000_000)
    ap.add_argument("--method", default="bilinear")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--freq", type=float, default=20.0, help="cutoff, cycles per whole signal")
    ap.add_argument("--checkpoints", default="1000,10000,100000",
                    help="comma-separated sample counts")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args(argv)
    try:
        checkpoints = tuple(int(v) for v in args.checkpoints.split(",") if v.strip())
        res = approximate_function(args.measure, args.N, args.length, method=args.method,
                                   seed=args.seed, checkpoints=checkpoints, freq=args.freq)
    except ValueError as err:
        sys.exit(f"hippo.funcapprox: error: {err}")
    if args.json:
        print(json.dumps(asdict(res)))
    else:
        at = ", ".join(f"{k}: {v:.3g}" for k, v in res.mse_at.items())
        print(f"{res.measure} N={res.N} length={res.length} method={res.method} "
              f"backend={res.backend}: mse={res.mse:.4g} ({at}); "
              f"{res.steps_per_s:,.0f} steps/s, {res.seconds:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
