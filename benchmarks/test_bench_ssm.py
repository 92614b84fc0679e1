"""Deep-SSM speed (pytest-benchmark; run with -m benchmark --benchmark-enable):

- the S4D layer's two forms at L = 784 (sequential MNIST length), d_model 128, N = 64, batch
  16: the FFT convolution with its Vandermonde kernel (kernel included) against its own
  recurrence (one diag_step per element);
- Mamba's selective scan, forward and backward, at the quick profile's CharacterTrajectories
  size (batch 64, d_inner 128, d_state 16, L 182): every mode of :func:`hippo.scan.selective_scan`;
- the ``interleaved`` tests alternate the paths call by call in one process, so drift in a
  shared machine's speed hits all of them; ``extra_info`` (and ``-s`` output) holds each one's
  median and the ratios: the ``compiled`` scan against ``fast`` (and against mambapy's
  Blelloch ``pscan``, the pure-torch scan of the ``mambapy`` package, when that is installed:
  it is no dependency of this project), and a whole ``mamba`` training step at the quick size
  (d_model 64, 4 layers, batch 64, L 182) with ``scan="auto"`` (compiled on CPU) against
  ``scan="fast"``;
- the training step of ``s4d`` against ``lstm`` is in ``test_bench_models.py`` (the reference sizes).

Each pair shares a pytest-benchmark group, so the table shows them side by side. Run the
interleaved ones on one thread::

    OMP_NUM_THREADS=1 PYTHONPATH=. python -m pytest benchmarks/test_bench_ssm.py -m benchmark \
        -k interleaved -s
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from bench.batch import SequenceBatch
from bench.models import create_model
from hippo.fftconv import causal_conv
from hippo.scan import SCANS, compiled_applies, selective_scan
from hippo.ssm import diag_discretize, diag_kernel, diag_output, diag_step, s4d_init

pytestmark = pytest.mark.benchmark

H, N, L_MNIST, B_MNIST = 128, 64, 784, 16


def _s4d_params():
    g = torch.Generator().manual_seed(0)
    A, Bv = s4d_init("legs", N)
    A = A.to(torch.complex64).expand(H, -1)
    Bv = Bv.to(torch.complex64).expand(H, -1)
    Cv = torch.randn(H, N // 2, dtype=torch.complex64, generator=g)
    dt = torch.exp(torch.rand(H, generator=g) * math.log(100) + math.log(1e-3))
    u = torch.randn(B_MNIST, H, L_MNIST, generator=g)
    return A, Bv, Cv, dt, u


@pytest.mark.parametrize("form", ["fft_conv", "recurrence"])
def test_s4d_layer_conv_vs_recurrence(benchmark, form):
    benchmark.group = f"S4D layer: H {H}, N {N}, L {L_MNIST}, batch {B_MNIST}"
    A, Bv, Cv, dt, u = _s4d_params()

    def conv():
        return causal_conv(u, diag_kernel(A, Bv, Cv, dt, L_MNIST))

    def rec():
        Abar, Bbar, _ = diag_discretize(A, Bv, dt)
        x = torch.zeros(B_MNIST, H, N // 2, dtype=torch.complex64)
        ys = []
        for k in range(L_MNIST):
            x = diag_step(x, u[..., k], Abar, Bbar)
            ys.append(diag_output(x, Cv))
        return torch.stack(ys, -1)

    with torch.no_grad():
        y = benchmark.pedantic(conv if form == "fft_conv" else rec, rounds=5, iterations=1,
                               warmup_rounds=1)
    assert y.shape == (B_MNIST, H, L_MNIST)
    if benchmark.stats is not None:  # None under --benchmark-disable (one plain call)
        benchmark.extra_info["steps_per_s"] = B_MNIST * L_MNIST / benchmark.stats.stats.median


SCAN_B, SCAN_D, SCAN_N, SCAN_L = 64, 128, 16, 182


def _scan_args() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    u = torch.randn(SCAN_B, SCAN_D, SCAN_L, generator=g)
    delta = F.softplus(torch.randn(SCAN_B, SCAN_D, SCAN_L, generator=g) - 3)
    A = -torch.arange(1, SCAN_N + 1, dtype=torch.float32).expand(SCAN_D, SCAN_N).contiguous()
    B, C = (torch.randn(SCAN_B, SCAN_N, SCAN_L, generator=g) for _ in range(2))
    return [t.requires_grad_() for t in (u, delta, A, B, C)]


def _scan_step(mode: str, args: list[torch.Tensor]) -> Callable[[], tuple]:
    def step():
        y = selective_scan(*args, mode=mode)
        return torch.autograd.grad(y.square().sum(), args)

    return step


def _mambapy_step(args: list[torch.Tensor]) -> Callable[[], tuple] | None:
    """mambapy's ``MambaBlock.selective_scan`` without its D term (the same scan), on the
    (B, L, D)-major layout it takes; None if mambapy is not installed."""
    try:
        from mambapy.pscan import pscan
    except ImportError:
        return None

    def step():
        u, delta, A, B, C = args
        x, dt = u.transpose(1, 2), delta.transpose(1, 2)  # (Bt, L, D)
        deltaA = torch.exp(dt.unsqueeze(-1) * A)  # (Bt, L, D, N)
        BX = dt.unsqueeze(-1) * B.transpose(1, 2).unsqueeze(2) * x.unsqueeze(-1)
        hs = pscan(deltaA, BX)
        y = (hs @ C.transpose(1, 2).unsqueeze(-1)).squeeze(3)  # (Bt, L, D)
        return torch.autograd.grad(y.square().sum(), args)

    return step


def _interleave(benchmark, steps: dict[str, Callable], rounds: int, base: str) -> dict:
    """Alternate ``steps`` call by call for ``rounds`` (after one warm-up round); extra_info:
    each one's median in ms and every other path's median (and best) over ``base``'s."""
    times: dict[str, list[float]] = {name: [] for name in steps}

    def run() -> None:
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)

    benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=1)
    medians = {name: statistics.median(ts[1:]) for name, ts in times.items()}  # [0]: warm-up
    best = {name: min(ts[1:]) for name, ts in times.items()}
    info = {f"{name}_median_ms": 1e3 * t for name, t in medians.items()}
    for name in steps:
        if name != base:
            info[f"{name}_over_{base}_median"] = medians[name] / medians[base]
            info[f"{name}_over_{base}_min"] = best[name] / best[base]
    benchmark.extra_info.update(info)
    print(f"\n{benchmark.group}: threads {torch.get_num_threads()}: "
          + ", ".join(f"{k} {v:.3g}" for k, v in info.items()))
    return info


@pytest.mark.parametrize("mode", SCANS)
def test_selective_scan_forward_backward(benchmark, mode):
    benchmark.group = (f"selective scan fwd+bwd: batch {SCAN_B}, D {SCAN_D}, N {SCAN_N}, "
                       f"L {SCAN_L}")
    if mode == "compiled" and not compiled_applies(torch.zeros(1)):
        pytest.skip("the C++ library does not build here")
    grads = benchmark.pedantic(_scan_step(mode, _scan_args()), rounds=3, iterations=1,
                               warmup_rounds=1)
    assert all(torch.isfinite(gr).all() for gr in grads)


def test_selective_scan_interleaved(benchmark):
    """compiled, fast (and mambapy's pscan if installed) alternated; the goal: fast / compiled
    >= 8 on one thread."""
    if not compiled_applies(torch.zeros(1)):
        pytest.skip("the C++ library does not build here")
    benchmark.group = f"selective scan interleaved: batch {SCAN_B}, D {SCAN_D}, L {SCAN_L}"
    args = _scan_args()
    steps = {"compiled": _scan_step("compiled", args), "fast": _scan_step("fast", args)}
    peer = _mambapy_step(args)
    if peer is not None:
        steps["mambapy_pscan"] = peer
    _interleave(benchmark, steps, rounds=5, base="compiled")


QUICK_D_MODEL, QUICK_LAYERS, QUICK_C, QUICK_K = 64, 4, 3, 20


def _mamba_train_step(scan: str) -> Callable[[], float]:
    """One AdamW step of ``mamba`` at the quick size on a fixed CharacterTrajectories-shaped
    batch (batch 64, 182 steps, 3 channels, 20 classes); the same initial weights per scan."""
    g = torch.Generator().manual_seed(0)
    values = torch.randn(SCAN_B, SCAN_L, QUICK_C, generator=g)
    times = torch.arange(SCAN_L, dtype=torch.float32).expand(SCAN_B, SCAN_L).contiguous()
    batch = SequenceBatch(values, times, torch.ones(SCAN_B, SCAN_L, QUICK_C, dtype=torch.bool),
                          torch.full((SCAN_B,), SCAN_L),
                          torch.randint(0, QUICK_K, (SCAN_B,), generator=g))  # fmt: skip
    torch.manual_seed(0)
    model = create_model("mamba", QUICK_C, QUICK_K, hidden_size=QUICK_D_MODEL,
                         n_layers=QUICK_LAYERS, scan=scan)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(batch), batch.labels)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def test_mamba_train_step_interleaved(benchmark):
    """A whole ``mamba`` training step, scan auto (compiled on CPU) against fast; the goal:
    fast / auto >= 3 on one thread."""
    if not compiled_applies(torch.zeros(1)):
        pytest.skip("the C++ library does not build here")
    benchmark.group = (f"mamba train step interleaved: d_model {QUICK_D_MODEL}, "
                       f"{QUICK_LAYERS} layers, batch {SCAN_B}, L {SCAN_L}")
    _interleave(benchmark, {"auto": _mamba_train_step("auto"), "fast": _mamba_train_step("fast")},
                rounds=5, base="auto")
