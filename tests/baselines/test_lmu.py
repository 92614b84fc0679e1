"""LMU, both cells: the memory matrices are the paper's, ZOH is scipy's, and the fused steps equal
the plain equations (hippo-code's gated cell, Voelker et al.'s ungated one)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.signal
import torch
from baseline_batches import make_batch

from baselines.lmu import LMU, VoelkerLMU

CELLS = [LMU, VoelkerLMU]


def formula(order: int, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """Voelker et al. 2019, eq. 2, element by element."""
    A = np.empty((order, order))
    B = np.empty(order)
    for i in range(order):
        B[i] = (2 * i + 1) * (-1) ** i / theta
        for j in range(order):
            A[i, j] = (2 * i + 1) * (-1 if i < j else (-1) ** (i - j + 1)) / theta
    return A, B


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(("order", "theta"), [(1, 1.0), (6, 10.0), (32, 182.0)])
def test_memory_matrices_are_zoh_of_the_papers_matrices(cell, order: int, theta: float) -> None:
    A, B = formula(order, theta)
    model = cell(2, 3, hidden_size=4, memory_order=order, theta=theta)
    Ad = scipy.linalg.expm(A)
    Bd = np.linalg.solve(A, (Ad - np.eye(order)) @ B)
    np.testing.assert_allclose(model.Ad.numpy(), Ad, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.Bd.numpy(), Bd, rtol=1e-5, atol=1e-6)
    # and the same as scipy's own ZOH, which the HiPPO reference code calls
    Ad2, Bd2, *_ = scipy.signal.cont2discrete(
        (A, B[:, None], np.ones((1, order)), 0), dt=1.0, method="zoh"
    )
    np.testing.assert_allclose(model.Bd.numpy(), Bd2[:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.Ad.numpy(), Ad2, rtol=1e-5, atol=1e-6)


def voelker_equations(model, x, h, m):
    """The LMU paper's cell, one step."""
    u = model.e_x @ x + model.e_h @ h + model.e_m @ m
    m = model.Ad @ m + model.Bd * u
    return torch.tanh(model.W_x @ x + model.W_h @ h + model.W_m @ m), m


def hippo_code_equations(model, x, h, m):
    """hippo-code model/memory.py MemoryCell.forward with LMUCell's architecture: u from [x, h]
    plus m . W_um; m updated first; h~ and the gate read the new m and the old h; no biases."""
    u = model.e_x @ x + model.e_h @ h + model.e_m @ m
    m = model.Ad @ m + model.Bd * u
    hidden = torch.tanh(model.W_x @ x + model.W_m @ m + model.W_h @ h)
    g = torch.sigmoid(model.G @ torch.cat([x, m, h]))
    return (1 - g) * h + g * hidden, m


@pytest.mark.parametrize(("cell", "equations"), [(LMU, hippo_code_equations), (VoelkerLMU, voelker_equations)])
def test_forward_matches_the_plain_equations(cell, equations) -> None:
    torch.manual_seed(0)
    model = cell(3, 4, hidden_size=5, memory_order=6, theta=8.0)
    with torch.no_grad():  # weights that start at zero must count in the check
        for p in (model.e_h, model.e_m, model.W_x, model.W_h):
            p.normal_()
    batch = make_batch([9, 5], seed=1)
    logits = model(batch)
    for b in range(2):
        h, m = torch.zeros(5), torch.zeros(6)
        for t in range(int(batch.lengths[b])):
            h, m = equations(model, batch.values[b, t], h, m)
        torch.testing.assert_close(logits[b], model.classifier(h), rtol=1e-5, atol=1e-6)


def test_hippo_code_initialisation() -> None:
    # LMUCell.default_initializers: ux one, uh / um / hx / hh zero, hm xavier; the gate is Linear_
    model = LMU(3, 4, hidden_size=5, memory_order=6, theta=8.0)
    assert (model.e_x == 1).all() and not model.e_h.any() and not model.e_m.any()
    assert not model.W_x.any() and not model.W_h.any() and model.W_m.std() > 0
    assert model.G.shape == (5, 3 + 6 + 5) and model.G.std() > 0


@pytest.mark.parametrize("cell", CELLS)
def test_defaults_and_config(cell) -> None:
    config = cell(3, 2).config
    assert (config["hidden_size"], config["memory_order"], config["theta"]) == (256, 256, 100.0)
    assert (config["discretization"], config["dt"]) == ("zoh", 1.0)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("theta", [0, -5.0, float("nan"), "100"])
def test_bad_theta_raises(cell, theta: object) -> None:
    with pytest.raises(ValueError, match="theta must be a positive number"):
        cell(3, 2, hidden_size=4, theta=theta)


@pytest.mark.parametrize("cell", CELLS)
def test_bad_memory_order_raises(cell) -> None:
    with pytest.raises(ValueError, match="memory_order must be a positive integer"):
        cell(3, 2, hidden_size=4, memory_order=0)


@pytest.mark.parametrize("cell", CELLS)
def test_fixed_matrices_are_not_in_the_state_dict_and_survive_loading(cell) -> None:
    # Ad and Bd follow from the config: a checkpoint of another theta must not replace them.
    model = cell(3, 2, hidden_size=4, memory_order=6, theta=10.0)
    other = cell(3, 2, hidden_size=4, memory_order=6, theta=50.0)
    state = other.state_dict()
    assert "Ad" not in state and "Bd" not in state
    Ad, Bd = model.Ad.clone(), model.Bd.clone()
    assert not torch.allclose(Ad, other.Ad)
    model.load_state_dict(state)  # strict: nothing missing, nothing unexpected
    assert torch.equal(model.Ad, Ad) and torch.equal(model.Bd, Bd)
    assert torch.equal(model.W_m, other.W_m)  # the learned weights did load
    # a checkpoint from when they were persistent buffers still loads, and they stay ours
    legacy = {**state, "Ad": other.Ad.clone(), "Bd": other.Bd.clone()}
    model.load_state_dict(legacy)
    assert torch.equal(model.Ad, Ad) and torch.equal(model.Bd, Bd)
    assert "Ad" in legacy  # the caller's dict is left alone
    # and as a submodule (prefixed keys)
    wrapper, source = torch.nn.ModuleDict({"lmu": model}), torch.nn.ModuleDict({"lmu": other})
    wrapper.load_state_dict({**source.state_dict(), "lmu.Ad": other.Ad, "lmu.Bd": other.Bd})
    assert torch.equal(model.Ad, Ad) and torch.equal(model.Bd, Bd)
