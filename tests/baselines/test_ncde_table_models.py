"""GRU-Δt, the decay GRU-D and GRU-ODE: the Neural CDE paper's other Table 1 rows. GRU-ODE's
fast backend is checked against its autograd loop, against torchcde.cdeint, and by gradcheck."""

from __future__ import annotations

import pytest
import torch
import torchcde
from baseline_batches import make_batch

from baselines.gru_dt import GRUDeltaT, time_since_observation
from baselines.gru_ode import GRUODE, _GRUODESolve, path_derivative
from bench.batch import SequenceBatch
from bench.models.base import observed_lengths


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


@pytest.mark.parametrize("backend", ["fast", "autograd"])
def test_gru_ode_solve_equals_torchcde_cdeint(backend):
    """Our rk4 loop against torchcde.cdeint with the reference's ContinuousRNNConverter field."""
    torch.manual_seed(0)
    model = GRUODE(3, 4, hidden_size=6, backend=backend).double()
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


def _logits_and_grads(model: GRUODE, batch: SequenceBatch) -> tuple[torch.Tensor, list]:
    model.zero_grad()
    logits = model(batch)
    loss = torch.nn.functional.cross_entropy(logits, batch.labels % 4) + model.regularization()
    loss.backward()
    return logits.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-10), (torch.float32, 1e-5)],
                         ids=["float64", "float32"])  # fmt: skip
def test_gru_ode_fast_backend_equals_the_autograd_loop(dtype, tol):
    # missing points, irregular times and different read-out lengths; gaps up to 3 (time scale
    # 2) push h past 1, so the clamp's derivative is exercised
    batch = make_batch([11, 8, 5], missing=0.4, time_scale=2.0, seed=0)
    batch = SequenceBatch(batch.values.to(dtype), batch.times.to(dtype), batch.mask,
                          batch.lengths, batch.labels)  # fmt: skip
    lengths = observed_lengths(batch.mask, batch.lengths)
    assert len(set(lengths.tolist())) == 3
    results = {}
    for backend in ("fast", "autograd"):
        torch.manual_seed(1)
        model = GRUODE(3, 4, hidden_size=6, backend=backend).to(dtype)
        assert model.config["backend"] == backend
        results[backend] = _logits_and_grads(model, batch)
    with torch.no_grad():
        h = model.states(model.coefficients(batch), int(lengths.max()))[..., model.path_channels :]
    assert h.abs().max() > 1.05  # the clamp clips somewhere
    (ours, our_grads), (ref, ref_grads) = results["fast"], results["autograd"]
    torch.testing.assert_close(ours, ref, rtol=tol, atol=tol)
    for a, b in zip(our_grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_gru_ode_solve_backward_is_the_exact_derivative():
    # gradcheck of the hand-written reverse pass: projections, h0 (entries past 1: clamped) and
    # the U weights, float64, tiny
    g = torch.Generator().manual_seed(0)
    steps, b, h = 2, 2, 3
    calls = 4 * steps

    def rand(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).requires_grad_()

    coefs = torch.rand(steps * 10, b, 1, generator=g, dtype=torch.float64)
    h0 = torch.tensor([[1.7, -0.3, 0.5], [-1.4, 0.8, 2.0]], dtype=torch.float64, requires_grad=True)
    inputs = (rand(calls, b, 2 * h), rand(calls, b, h), coefs, h0, rand(2 * h, h), rand(h, h))
    assert torch.autograd.gradcheck(_GRUODESolve.apply, inputs)


def test_gru_ode_fast_model_gradients_are_exact():
    # the whole fast path (projections and signs formed in autograd, the solve by hand) by gradcheck
    torch.manual_seed(0)
    model = GRUODE(2, 3, hidden_size=3).double()
    batch = make_batch([5, 4], channels=2, missing=0.3, time_scale=2.0, seed=3)
    batch = SequenceBatch(batch.values.double(), batch.times.double(), batch.mask, batch.lengths,
                          batch.labels)  # fmt: skip
    names = [n for n, _ in model.named_parameters()]

    def logits(*params):
        return torch.func.functional_call(model, dict(zip(names, params, strict=True)), (batch,))

    params = [p.detach().clone().requires_grad_() for p in model.parameters()]
    assert torch.autograd.gradcheck(logits, params)


def test_gru_ode_no_grad_forward_equals_the_recorded_one():
    torch.manual_seed(0)
    model = GRUODE(3, 4, hidden_size=6)
    batch = make_batch([9, 6], missing=0.3, time_scale=2.0, seed=1)
    with torch.no_grad():
        plain = model(batch)
    torch.testing.assert_close(model(batch).detach(), plain, rtol=0, atol=0)


def test_gru_ode_path_that_requires_grad_goes_through_autograd():
    torch.manual_seed(0)
    model = GRUODE(3, 4, hidden_size=6).double()
    batch = make_batch([7, 5], missing=0.3, seed=2)
    coeffs = model.coefficients(batch).double().requires_grad_()
    with pytest.raises(ValueError, match="coeffs require grad"):
        model.fast_states(coeffs, 7)
    z = model.states(coeffs, 7)
    z.sum().backward()
    assert coeffs.grad is not None and coeffs.grad.abs().sum() > 0
    fast = model.fast_states(coeffs.detach(), 7)
    torch.testing.assert_close(z.detach(), fast, rtol=1e-12, atol=1e-12)


def test_gru_ode_backend_choice():
    assert GRUODE(3, 2).config["backend"] == "fast"
    assert GRUODE(3, 2, backend="autograd").config["backend"] == "autograd"
    with pytest.raises(ValueError, match="backend must be one of"):
        GRUODE(3, 2, backend="torchcde")
