"""Deep-SSM speed (pytest-benchmark; run with -m benchmark --benchmark-enable):

- the S4D layer's two forms at L = 784 (sequential MNIST length), d_model 128, N = 64, batch
  16: the FFT convolution with its Vandermonde kernel (kernel included) against its own
  recurrence (one diag_step per element);
- Mamba's selective scan, forward and backward, at the quick profile's CharacterTrajectories
  size (batch 64, d_inner 128, d_state 16, L 182): the ``fast`` scan against ``chunked`` and
  the ``sequential`` reference;
- the training step of ``s4d`` against ``lstm`` is in ``test_bench_models.py`` (the reference sizes).

Each pair shares a pytest-benchmark group, so the table shows them side by side.
"""

from __future__ import annotations

import math

import pytest
import torch

from hippo.fftconv import causal_conv
from hippo.scan import SCANS, selective_scan
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


@pytest.mark.parametrize("mode", SCANS)
def test_selective_scan_forward_backward(benchmark, mode):
    benchmark.group = (f"selective scan fwd+bwd: batch {SCAN_B}, D {SCAN_D}, N {SCAN_N}, "
                       f"L {SCAN_L}")
    g = torch.Generator().manual_seed(0)
    u = torch.randn(SCAN_B, SCAN_D, SCAN_L, generator=g)
    delta = torch.nn.functional.softplus(torch.randn(SCAN_B, SCAN_D, SCAN_L, generator=g) - 3)
    A = -torch.arange(1, SCAN_N + 1, dtype=torch.float32).expand(SCAN_D, SCAN_N).contiguous()
    B, C = (torch.randn(SCAN_B, SCAN_N, SCAN_L, generator=g) for _ in range(2))
    args = [t.requires_grad_() for t in (u, delta, A, B, C)]

    def step():
        y = selective_scan(*args, mode=mode)
        return torch.autograd.grad(y.square().sum(), args)

    grads = benchmark.pedantic(step, rounds=3, iterations=1, warmup_rounds=1)
    assert all(torch.isfinite(gr).all() for gr in grads)
