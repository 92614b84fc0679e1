"""The compiled LegS step (hippo/csrc/legs_step.cpp): forward, backward, dispatch."""

import pytest
import torch

from hippo import _ext, legs_step, legs_step_dense, legs_step_scan
from hippo.legs import legs_step_cpp

pytestmark = pytest.mark.skipif(
    not _ext.cpp_available(), reason="the C++ LegS extension did not build (no compiler/ninja?)"
)

ALPHA = {"forward_euler": 0.0, "bilinear": 0.5, "backward_euler": 1.0}


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("method", list(ALPHA))
@pytest.mark.parametrize("d", [1.0, 0.5, 1 / 3, 1 / 1000, 1e-6, "tensor"])
def test_cpp_equals_dense_float64(method, d):
    g = _gen(1)
    B, N = 11, 64  # B not a multiple of the kernel's block of 8 series
    c = torch.randn(B, N, dtype=torch.float64, generator=g)
    f = torch.randn(B, dtype=torch.float64, generator=g)
    if d == "tensor":
        d = torch.rand(B, dtype=torch.float64, generator=g) * 0.9 + 0.1
    ref = legs_step_dense(c, f, d, method=method)
    out = legs_step_cpp(c, f, d, alpha=ALPHA[method])
    assert (out - ref).abs().max() <= 1e-10 * ref.abs().max()
    assert torch.equal(legs_step(c, f, d, method=method), out)  # CPU dispatches to the kernel


def test_cpp_broadcasting_and_shapes():
    g = _gen(2)
    c = torch.randn(4, 3, 20, dtype=torch.float64, generator=g)
    f = torch.randn(4, 3, dtype=torch.float64, generator=g)
    d = torch.rand(4, 1, dtype=torch.float64, generator=g) * 0.5 + 0.1
    for args in ((c, f, d), (c, f, 0.25), (c[0, 0], f[0, 0], 0.25), (c[:, :1], f, 0.25),
                 (c, f, torch.tensor(0.3, dtype=torch.float64))):
        ref = legs_step_dense(*args)
        out = legs_step(*args)
        assert out.shape == ref.shape
        assert (out - ref).abs().max() <= 1e-10 * ref.abs().max()


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
def test_cpp_gradcheck(alpha):
    g = _gen(3)
    B, N = 9, 12
    c = torch.randn(B, N, dtype=torch.float64, generator=g, requires_grad=True)
    f = torch.randn(B, dtype=torch.float64, generator=g, requires_grad=True)
    d = (torch.rand(B, dtype=torch.float64, generator=g) * 0.9 + 0.1).requires_grad_()
    assert torch.autograd.gradcheck(lambda c, f: legs_step_cpp(c, f, 0.37, alpha=alpha), (c, f))
    assert torch.autograd.gradcheck(lambda c, f, d: legs_step_cpp(c, f, d, alpha=alpha),
                                    (c, f, d))
    # broadcast inputs: gradients are reduced back to the input shapes
    d2 = d[:3, None].detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda c, f, d: legs_step_cpp(c, f, d, alpha=alpha), (c[:6].view(3, 2, N), f[:2], d2)
    )


def test_cpp_float32_matches_scan():
    g = _gen(4)
    B, N = 100, 256
    c = torch.randn(B, N, generator=g)
    f = torch.randn(B, generator=g)
    for d in (1.0, 1 / 7, 1e-4, torch.rand(B, generator=g) * 0.9 + 0.1):
        out = legs_step_cpp(c, f, d)
        assert out.dtype == torch.float32
        # the kernel runs its recurrences in float64: float32 rounding only (~5e-8 relative)
        exact = legs_step_dense(c.double(), f.double(), d.double() if torch.is_tensor(d) else d)
        assert (out.double() - exact).abs().max() <= 1e-6 * exact.abs().max()
        # the float32 scan's own error is ~2e-5 relative at N = 256 (~1e-6 at N = 64)
        ref = legs_step_scan(c, f, d)
        assert (out - ref).abs().max() <= 1e-4 * ref.abs().max()
        ref64 = legs_step_scan(c[:, :64], f, d)
        assert (legs_step_cpp(c[:, :64], f, d) - ref64).abs().max() <= 1e-5 * ref64.abs().max()


def test_cpp_float32_grads_match_scan():
    g = _gen(5)
    B, N = 16, 128
    c = torch.randn(B, N, generator=g, requires_grad=True)
    f = torch.randn(B, generator=g, requires_grad=True)
    d = (torch.rand(B, generator=g) * 0.9 + 0.1).requires_grad_()
    w = torch.randn(B, N, generator=g)
    grads = []
    for step in (legs_step_cpp, legs_step_scan):
        (step(c, f, d) * w).sum().backward()
        grads.append([t.grad.clone() for t in (c, f, d)])
        for t in (c, f, d):
            t.grad = None
    for a, b in zip(*grads, strict=True):
        assert (a - b).abs().max() <= 1e-4 * b.abs().max()


def test_step_chain_matches_dense_and_grad():
    # 50 chained steps as in the HiPPO-RNN cell: values and gradients equal the dense path
    g = _gen(6)
    B, N, L = 5, 32, 50
    c0 = torch.randn(B, N, dtype=torch.float64, generator=g, requires_grad=True)
    fs = torch.randn(L, B, dtype=torch.float64, generator=g, requires_grad=True)
    outs = []
    for step in (legs_step_cpp, lambda c, f, d: legs_step_dense(c, f, d)):
        c = c0
        for k in range(1, L + 1):
            c = step(c, fs[k - 1], 1.0 / k)
        c0.grad = fs.grad = None
        c.square().sum().backward()
        outs.append((c.detach(), c0.grad.clone(), fs.grad.clone()))
    for a, b in zip(*outs, strict=True):
        assert (a - b).abs().max() <= 1e-10 * b.abs().max()


def test_dispatch_falls_back_without_extension(monkeypatch):
    g = _gen(7)
    c = torch.randn(5, 16, dtype=torch.float64, generator=g)
    f = torch.randn(5, dtype=torch.float64, generator=g)
    d = torch.rand(5, dtype=torch.float64, generator=g) * 0.9 + 0.1
    fast = [legs_step(c, f, 0.25), legs_step(c, f, d)]
    monkeypatch.setitem(_ext._state, "lib", None)  # as if the build had failed
    slow = [legs_step(c, f, 0.25), legs_step(c, f, d)]
    for a, b in zip(fast, slow, strict=True):
        assert (a - b).abs().max() <= 1e-12 * b.abs().max()
    with pytest.raises(RuntimeError, match="not available"):
        legs_step_cpp(c, f, 0.25)
