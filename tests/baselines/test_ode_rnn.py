"""ODE-RNN: the in-house fixed step equals torchdiffeq's, and the whole model equals the
reference loop (torchdiffeq.odeint over each gap, then nn.GRUCell where observed)."""

from __future__ import annotations

import pytest
import torch
import torchdiffeq
from baseline_batches import make_batch

from baselines.ode_rnn import ODERNN, SOLVERS, fixed_step


@pytest.mark.parametrize("method", SOLVERS)
def test_fixed_step_equals_torchdiffeq_on_one_series(method: str) -> None:
    torch.manual_seed(0)
    model = ODERNN(2, 3, hidden_size=5, hidden_hidden_size=7, solver=method).double()
    h0 = torch.randn(1, 5, dtype=torch.float64)
    dt = torch.tensor([[0.37]], dtype=torch.float64)
    ours = fixed_step(model.func, h0, dt, method)
    theirs = torchdiffeq.odeint(
        lambda t, h: model.func(h),
        h0,
        torch.tensor([0.0, 0.37], dtype=torch.float64),
        method=method,
    )[-1]
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def test_per_series_gaps_equal_separate_solves() -> None:
    torch.manual_seed(0)
    model = ODERNN(2, 3, hidden_size=5).double()
    h0 = torch.randn(3, 5, dtype=torch.float64)
    dts = torch.tensor([[0.1], [1.0], [2.5]], dtype=torch.float64)
    together = fixed_step(model.func, h0, dts, "rk4")
    for b in range(3):
        alone = torchdiffeq.odeint(
            lambda t, h: model.func(h), h0[b], torch.cat([dts.new_zeros(1), dts[b]]), method="rk4"
        )[-1]
        torch.testing.assert_close(together[b], alone, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("time_scale", [1.0, 0.005])
def test_forward_matches_the_reference_loop(time_scale: float) -> None:
    torch.manual_seed(2)
    model = ODERNN(3, 4, hidden_size=6, hidden_hidden_size=5)
    batch = make_batch([11, 8], missing=0.5, time_scale=time_scale, seed=7)
    batch.mask[0, 4] = False  # a step with nothing observed: h must only evolve there
    logits = model(batch)
    func = lambda t, h: model.func(h)  # noqa: E731
    for b in range(2):
        h = torch.zeros(1, 6)
        for k in range(int(batch.lengths[b])):
            if k > 0:
                h = torchdiffeq.odeint(func, h, batch.times[b, k - 1 : k + 1], method="rk4")[-1]
            if batch.mask[b, k].any():
                x = torch.cat([batch.values[b, k], batch.mask[b, k].float()]).unsqueeze(0)
                h = model.cell(x, h)
        torch.testing.assert_close(logits[b], model.classifier(h)[0], rtol=1e-5, atol=1e-6)


def test_config_records_the_solver() -> None:
    config = ODERNN(3, 2).config
    assert config["solver"] == "rk4" and config["steps_per_gap"] == 1
    sizes = {k: config[k] for k in ("hidden_size", "hidden_hidden_size", "num_hidden_layers")}
    assert sizes == {"hidden_size": 32, "hidden_hidden_size": 32, "num_hidden_layers": 3}
