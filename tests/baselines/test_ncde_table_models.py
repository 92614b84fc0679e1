"""GRU-Δt, the decay GRU-D and GRU-ODE: the Neural CDE paper's other Table 1 rows."""

from __future__ import annotations

import pytest
import torch
import torchcde

from baselines.gru_dt import GRUDeltaT, time_since_observation
from baselines.gru_ode import GRUODE, path_derivative
from bench.batch import SequenceBatch


def _batch(b=3, length=12, c=3, drop=0.5, seed=0) -> SequenceBatch:
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(b, length, c, generator=g)
    observed = torch.rand(b, length, 1, generator=g) > drop
    observed[:, 0] = True
    return SequenceBatch(values, torch.arange(length, dtype=torch.float32).expand(b, length).clone(),
                         observed.expand(b, length, c), torch.full((b,), length), torch.arange(b) % 2)  # fmt: skip


def test_time_since_observation():
    times = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]])
    observed = torch.tensor([[True, False, False, True, False, True]])
    assert time_since_observation(times, observed).tolist() == [[0.0, 1.0, 2.0, 3.0, 1.0, 2.0]]


@pytest.mark.parametrize("decay", [False, True])
def test_gru_dt_reads_only_the_observed_steps(decay):
    torch.manual_seed(0)
    model = GRUDeltaT(3, 2, hidden_size=5, decay=decay)
    batch = _batch()
    noisy = batch.values.clone()
    noisy[~batch.mask] = 1e3  # the values at unobserved steps are never read
    altered = SequenceBatch(noisy, batch.times, batch.mask, batch.lengths, batch.labels)
    torch.testing.assert_close(model(batch), model(altered))
    # the decay variant differs from GRU-Δt only by the decay
    if decay:
        plain = GRUDeltaT(3, 2, hidden_size=5, decay=False)
        plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("decay")})
        with torch.no_grad():
            model.decay.weight.fill_(-1.0), model.decay.bias.fill_(0.0)  # relu(-gap) = 0: no decay
        torch.testing.assert_close(model(batch), plain(batch))


def test_gru_dt_every_parameter_gets_a_gradient():
    for decay in (False, True):
        model = GRUDeltaT(3, 2, hidden_size=5, decay=decay)
        loss = model(_batch()).sum() + model.regularization()
        loss.backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_path_derivative_matches_torchcde():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 9, 4, generator=g, dtype=torch.float64)
    coeffs = torchcde.hermite_cubic_coefficients_with_backward_differences(x)
    spline = torchcde.CubicSpline(coeffs)
    fractions = (0.0, 1 / 3, 2 / 3, 1.0)
    ours = path_derivative(coeffs, fractions)
    for k in range(8):
        for i, f in enumerate(fractions):
            torch.testing.assert_close(ours[:, k, i], spline.derivative(torch.tensor(k + f, dtype=torch.float64)))


def test_gru_ode_solve_equals_torchcde_cdeint():
    """Our rk4 loop against torchcde.cdeint with the reference's ContinuousRNNConverter field."""
    torch.manual_seed(0)
    model = GRUODE(3, 4, hidden_size=6).double()
    batch = _batch(drop=0.0)
    x = torch.cat([batch.times[..., None], batch.values], dim=-1).double()
    coeffs = torchcde.hermite_cubic_coefficients_with_backward_differences(x)
    c = model.path_channels

    class Converter(torch.nn.Module):  # metamodel.ContinuousRNNConverter, transcribed
        def forward(self, t, z):
            out = torch.zeros(*z.shape, c, dtype=z.dtype)
            out[:, :c, :] = torch.eye(c, dtype=z.dtype)
            out[:, c:, 0] = model.func(z[:, :c], z[:, c:])
            return out

    spline = torchcde.CubicSpline(coeffs)
    z0 = torch.zeros(x.shape[0], c + model.hidden_size, dtype=torch.float64)
    expected = torchcde.cdeint(spline, Converter(), z0, spline.grid_points, method="rk4",
                               options={"step_size": 1.0})  # fmt: skip
    torch.testing.assert_close(model.states(coeffs, x.shape[1]), expected, rtol=1e-12, atol=1e-12)


def test_gru_ode_every_parameter_gets_a_gradient():
    model = GRUODE(3, 2, hidden_size=5)
    (model(_batch()).sum() + model.regularization()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
