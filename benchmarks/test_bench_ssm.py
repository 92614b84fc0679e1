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
- a whole ``s4d`` training step (4 layers, d_model 128, batch 64, CharacterTrajectories at
  200 Hz: 182 steps, 3 channels, 20 classes) against the same body with its mixers replaced by
  :class:`S4RefLayer`, a re-implementation of state-spaces/s4's standalone S4D layer
  (``models/s4/s4d.py``: its Vandermonde kernel through a materialised (H, N/2, L) exponential,
  ``irfft(rfft(u, n=2L) * rfft(k, n=2L))``, GELU, its tied dropout, a width-1 Conv1d + GLU);
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
    if mode == "mamba_ssm":
        pytest.skip("mamba_ssm's kernel is CUDA-only (tests/test_gpu_kernels.py compares it)")
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


# ---- S4D against state-spaces/s4's own layer --------------------------------------------------
class S4RefLayer(torch.nn.Module):
    """state-spaces/s4 ``models/s4/s4d.py`` (``S4D`` with its ``S4DKernel``, S4D-Lin init),
    re-implemented line by line, with ``transposed=False``: (B, L, H) -> (B, L, H). Its
    ``DropoutNd`` (one mask per (batch, channel), tied over time) is written out."""

    def __init__(self, H: int, N: int = 64, dropout: float = 0.1, dt_min: float = 1e-3,
                 dt_max: float = 1e-1):
        super().__init__()
        nn = torch.nn
        self.log_dt = nn.Parameter(torch.rand(H) * (math.log(dt_max) - math.log(dt_min))
                                   + math.log(dt_min))
        self.C = nn.Parameter(torch.view_as_real(torch.randn(H, N // 2, dtype=torch.cfloat)))
        self.log_A_real = nn.Parameter(torch.log(0.5 * torch.ones(H, N // 2)))
        self.A_imag = nn.Parameter(math.pi * torch.arange(N // 2).float().expand(H, -1).clone())
        self.D = nn.Parameter(torch.randn(H))
        self.p = dropout
        self.output_linear = nn.Sequential(nn.Conv1d(H, 2 * H, kernel_size=1), nn.GLU(dim=-2))

    def kernel(self, L: int) -> torch.Tensor:
        dt = torch.exp(self.log_dt)
        C = torch.view_as_complex(self.C)
        A = -torch.exp(self.log_A_real) + 1j * self.A_imag
        dtA = A * dt.unsqueeze(-1)
        K = dtA.unsqueeze(-1) * torch.arange(L, device=A.device)
        C = C * (torch.exp(dtA) - 1.0) / A
        return 2 * torch.einsum("hn, hnl -> hl", C, torch.exp(K)).real

    def forward(self, u: torch.Tensor, mult: torch.Tensor) -> torch.Tensor:
        u = u.transpose(-1, -2)
        L = u.size(-1)
        k = self.kernel(L)
        k_f = torch.fft.rfft(k, n=2 * L)
        u_f = torch.fft.rfft(u, n=2 * L)
        y = torch.fft.irfft(u_f * k_f, n=2 * L)[..., :L]
        y = y + u * self.D.unsqueeze(-1)
        y = F.gelu(y)
        if self.training and self.p > 0:
            mask = torch.rand(*y.shape[:-1], 1, device=y.device) < 1.0 - self.p
            y = y * mask * (1.0 / (1 - self.p))
        return self.output_linear(y).transpose(-1, -2)

    def ssm_parameters(self) -> list[torch.nn.Parameter]:
        return [self.log_dt, self.log_A_real, self.A_imag]


S4D_D_MODEL, S4D_LAYERS, CT_B, CT_L = 128, 4, 64, 182


def _ct_batch() -> SequenceBatch:
    g = torch.Generator().manual_seed(0)
    values = torch.randn(CT_B, CT_L, QUICK_C, generator=g)
    times = (torch.arange(CT_L, dtype=torch.float32) / 200).expand(CT_B, CT_L).contiguous()
    return SequenceBatch(values, times, torch.ones(CT_B, CT_L, QUICK_C, dtype=torch.bool),
                         torch.full((CT_B,), CT_L),
                         torch.randint(0, QUICK_K, (CT_B,), generator=g))  # fmt: skip


def _s4d_train_step(layer: str) -> Callable[[], float]:
    """One AdamW step of ``s4d`` (``layer="ours"``) or of the same body with S4RefLayer mixers
    (``"s4"``), physical time at 200 Hz (``time_unit`` 1/200, multiplier 1)."""
    batch = _ct_batch()
    torch.manual_seed(0)
    model = create_model("s4d", QUICK_C, QUICK_K, hidden_size=S4D_D_MODEL, n_layers=S4D_LAYERS,
                         time_unit=1 / 200)
    if layer == "s4":
        model.mixers = torch.nn.ModuleList(S4RefLayer(S4D_D_MODEL) for _ in range(S4D_LAYERS))
    opt = model.configure_optimizers(lr=0.01, weight_decay=0.01, total_steps=1000)["optimizer"]
    model.train()

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(batch), batch.labels)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def test_s4_reference_layer_matches_s4d_lin():
    """The reference layer computes what our S4D-Lin mixer computes (same parameters), so the
    timing compares equal work."""
    torch.manual_seed(0)
    ref = S4RefLayer(16, N=8, dropout=0.0)
    from baselines.deep_ssm import S4DMixer

    ours = S4DMixer(16, 8, init="lin", method="zoh", dt_min=1e-3, dt_max=1e-1, dropout=0.0)
    with torch.no_grad():
        ours.log_dt.copy_(ref.log_dt)
        ours.log_A_real.copy_(ref.log_A_real)
        ours.A_imag.copy_(ref.A_imag)
        ours.B.copy_(torch.view_as_real(torch.ones(16, 4, dtype=torch.cfloat)))
        ours.C.copy_(ref.C)
        ours.D.copy_(ref.D)
        ours.out.weight.copy_(ref.output_linear[0].weight[..., 0])
        ours.out.bias.copy_(ref.output_linear[0].bias)
    u = torch.randn(3, 50, 16)
    one = torch.ones(3)
    torch.testing.assert_close(ours(u, one), ref(u, one), rtol=1e-4, atol=1e-5)


def test_s4d_train_step_interleaved(benchmark):
    """Our ``s4d`` step against the same body built from s4's layer; the goal: s4 / ours >= 1.2
    on one thread."""
    benchmark.group = (f"s4d train step interleaved: d_model {S4D_D_MODEL}, {S4D_LAYERS} layers, "
                       f"batch {CT_B}, L {CT_L}")
    _interleave(benchmark, {"ours": _s4d_train_step("ours"), "s4": _s4d_train_step("s4")},
                rounds=10, base="ours")
