"""Speed comparisons for hippo/ (pytest-benchmark; run with -m benchmark --benchmark-enable).

- O(N) LegS update vs the dense per-step update (build matrices + solve), N = 256, per step.
- LTI memory of a whole sequence: FFT convolution vs the step-by-step recurrence, N = 256,
  L = 4096.
- project(x, "legs", 256, output="last") over 1e6 float64 steps (C++ kernel): steps/s.
"""

import statistics
import time

import pytest
import torch

from hippo import legs_init, legs_step_dense, project
from hippo.legs import legs_step_scan
from hippo.project import _lti_kernel, _lti_kernel_fft, cpp_available

pytestmark = pytest.mark.benchmark

N = 256


def _legs_loop(step, L):
    x = torch.randn(L, dtype=torch.float64)
    c = legs_init(x[:1], N)
    for k in range(1, L):
        c = step(c, x[k:k + 1], 1.0 / k)
    return c


@pytest.mark.parametrize("impl", ["o_n_torch", "o_n_cpp", "dense"])
def test_legs_per_step(benchmark, impl):
    L = {"dense": 200, "o_n_torch": 2000, "o_n_cpp": 100_000}[impl]
    if impl == "o_n_cpp":
        if not cpp_available():
            pytest.skip("C++ kernel unavailable")
        x = torch.randn(L, dtype=torch.float64)
        benchmark(lambda: project(x, "legs", N, output="last", backend="cpp"))
    else:
        step = legs_step_dense if impl == "dense" else legs_step_scan
        benchmark.pedantic(_legs_loop, args=(step, L), rounds=3, iterations=1)
    benchmark.extra_info["steps"] = L
    benchmark.extra_info["steps_per_s"] = L / benchmark.stats.stats.median


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("mode", ["fft", "fft_cold", "recurrent"])
def test_lti_fft_vs_recurrence(benchmark, mode, dtype):
    L = 4096
    x = torch.randn(1, L, dtype=dtype)

    def run():
        if mode == "fft_cold":  # include building the kernel K_m = Ad^m Bd
            _lti_kernel.cache_clear()
            _lti_kernel_fft.cache_clear()
        return project(x, "legt", N, dt=1.0 / L, mode="fft" if mode != "recurrent" else mode)

    benchmark.pedantic(run, rounds=5 if mode == "recurrent" else 50, iterations=1, warmup_rounds=1)
    benchmark.extra_info["steps_per_s"] = L / benchmark.stats.stats.median


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_lti_fft_speedup_interleaved(benchmark, dtype):
    """FFT and recurrence alternated call by call, so drift in a shared machine's speed hits both;
    extra_info holds each one's median and their ratio (the issue's goal: >= 20x)."""
    L = 4096
    x = torch.randn(1, L, dtype=dtype)
    times = {"fft": [], "recurrent": []}

    def run():
        for mode in times:
            start = time.perf_counter()
            project(x, "legt", N, dt=1.0 / L, mode=mode)
            times[mode].append(time.perf_counter() - start)

    benchmark.pedantic(run, rounds=15, iterations=1, warmup_rounds=1)
    medians = {mode: statistics.median(ts[1:]) for mode, ts in times.items()}  # [0]: warm-up
    benchmark.extra_info.update({f"{m}_ms": 1e3 * t for m, t in medians.items()})
    benchmark.extra_info["speedup"] = medians["recurrent"] / medians["fft"]


def test_legs_project_1e6(benchmark):
    if not cpp_available():
        pytest.skip("C++ kernel unavailable")
    x = torch.randn(1_000_000, dtype=torch.float64)
    benchmark.pedantic(lambda: project(x, "legs", N, output="last"), rounds=3, iterations=1)
    rate = 1e6 / benchmark.stats.stats.median
    benchmark.extra_info["steps_per_s"] = rate
    assert rate > 100_000  # the goal is >= 400k on 2 cores; keep slack for noisy machines
