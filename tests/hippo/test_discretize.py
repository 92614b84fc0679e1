"""Each discretisation against its formula."""

import pytest
import torch

from hippo import discretize, lti_step, transition

DT = 0.037


@pytest.fixture
def AB():
    return transition("legt", 6, theta=0.8)


def test_formulas(AB):
    A, B = AB
    eye = torch.eye(6, dtype=torch.float64)
    inv = torch.linalg.inv
    Ad, Bd = discretize(A, B, DT, "forward_euler")
    assert torch.allclose(Ad, eye + DT * A) and torch.allclose(Bd, DT * B)
    Ad, Bd = discretize(A, B, DT, "backward_euler")
    assert torch.allclose(Ad, inv(eye - DT * A)) and torch.allclose(Bd, DT * inv(eye - DT * A) @ B)
    Ad, Bd = discretize(A, B, DT, "bilinear")
    M = inv(eye - DT / 2 * A)
    assert torch.allclose(Ad, M @ (eye + DT / 2 * A)) and torch.allclose(Bd, DT * M @ B)
    Ad, Bd = discretize(A, B, DT, "gbt", alpha=0.3)
    M = inv(eye - 0.3 * DT * A)
    assert torch.allclose(Ad, M @ (eye + 0.7 * DT * A)) and torch.allclose(Bd, DT * M @ B)
    for a, name in [(0.0, "forward_euler"), (0.5, "bilinear"), (1.0, "backward_euler")]:
        g, ref = discretize(A, B, DT, "gbt", alpha=a), discretize(A, B, DT, name)
        assert torch.allclose(g[0], ref[0]) and torch.allclose(g[1], ref[1])
    Ad, Bd = discretize(A, B, DT, "zoh")
    E = torch.linalg.matrix_exp(DT * A)
    assert torch.allclose(Ad, E, atol=1e-12)
    assert torch.allclose(Bd, torch.linalg.solve(A, (E - eye) @ B), atol=1e-12)


def test_lti_step(AB):
    A, B = AB
    Ad, Bd = discretize(A, B, DT)
    c, f = torch.randn(3, 6, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    want = torch.stack([Ad @ c[i] + Bd * f[i] for i in range(3)])
    assert torch.allclose(lti_step(c, f, Ad, Bd), want)


def test_bad_arguments(AB):
    A, B = AB
    with pytest.raises(ValueError, match="dt must be a positive"):
        discretize(A, B, 0.0)
    with pytest.raises(ValueError, match="dt must be a positive"):
        discretize(A, B, -1.0)
    with pytest.raises(ValueError, match="unknown discretisation method 'rk4'"):
        discretize(A, B, DT, "rk4")
    with pytest.raises(ValueError, match="needs alpha"):
        discretize(A, B, DT, "gbt")
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        discretize(A, B, DT, "gbt", alpha=1.5)
    with pytest.raises(ValueError, match="B must have shape"):
        discretize(A, B[:3], DT)
