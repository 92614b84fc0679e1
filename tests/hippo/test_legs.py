"""The O(N) LegS update against the dense reference."""

import pytest
import torch

from hippo import legs_init, legs_step, legs_step_dense, legs_step_scan

ALPHA = {"forward_euler": 0.0, "bilinear": 0.5, "backward_euler": 1.0}


@pytest.mark.parametrize("method", list(ALPHA))
@pytest.mark.parametrize("d", [1.0, 0.5, 1 / 3, 1 / 1000, 1 / 100_000, "tensor"])
def test_o_n_equals_dense(method, d):
    g = torch.Generator().manual_seed(1)
    c = torch.randn(4, 3, 40, dtype=torch.float64, generator=g)
    f = torch.randn(4, 3, dtype=torch.float64, generator=g)
    if d == "tensor":
        d = torch.rand(4, 3, dtype=torch.float64, generator=g) * 0.9 + 0.1
    ref = legs_step_dense(c, f, d, method=method)
    scale = ref.abs().max()
    assert (legs_step(c, f, d, method=method) - ref).abs().max() <= 1e-12 * scale + 1e-12
    scan = legs_step_scan(c, f, d, alpha=ALPHA[method])
    assert (scan - ref).abs().max() <= 1e-12 * scale + 1e-12


def test_large_n_scan_stays_accurate():
    # a_2 = 0 exactly at d = 1 (bilinear): a cumprod-ratio trick would divide by zero here
    c = torch.randn(2, 256, dtype=torch.float64)
    f = torch.randn(2, dtype=torch.float64)
    for d in (1.0, 1 / 7, 1e-6):
        ref = legs_step_dense(c, f, d)
        assert (legs_step_scan(c, f, d) - ref).abs().max() <= 1e-10 * ref.abs().max()


def test_gbt_and_float32_and_grad():
    c = torch.randn(5, 16, dtype=torch.float64, requires_grad=True)
    f = torch.randn(5, dtype=torch.float64, requires_grad=True)
    d = torch.full((5,), 0.25, dtype=torch.float64, requires_grad=True)
    assert torch.allclose(legs_step(c, f, 0.25, method="gbt", alpha=0.3),
                          legs_step_dense(c, f, 0.25, method="gbt", alpha=0.3))
    assert torch.autograd.gradcheck(lambda c, f, d: legs_step(c, f, d), (c, f, d))
    assert torch.autograd.gradcheck(lambda c, f: legs_step(c, f, 0.25), (c, f))
    c32 = c.detach().float()
    out = legs_step(c32, f.detach().float(), 0.25)
    assert out.dtype == torch.float32
    assert torch.allclose(out.double(), legs_step_dense(c, f, 0.25).detach(), atol=1e-5)


def test_init_and_bad_arguments():
    f = torch.tensor([2.0, -1.0])
    assert torch.equal(legs_init(f, 4), torch.tensor([[2.0, 0, 0, 0], [-1.0, 0, 0, 0]]))
    c = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="not available for LegS"):
        legs_step(c, f, 0.5, method="zoh")
    with pytest.raises(ValueError, match="unknown discretisation method"):
        legs_step(c, f, 0.5, method="euler")
    with pytest.raises(ValueError, match=r"dt_ratio .* must be in \(0, 1\]"):
        legs_step(c, f, 0.0)
    with pytest.raises(ValueError, match="does not broadcast"):
        legs_step(c, f, torch.full((3,), 0.5))
