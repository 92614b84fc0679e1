"""ODE-RNN: the in-house fixed step equals torchdiffeq's, and the whole model, outputs and
gradients, equals the reference loop (torchdiffeq.odeint over each gap, then nn.GRUCell where
observed)."""

from __future__ import annotations

import pytest
import torch
import torchdiffeq
from baseline_batches import make_batch

from baselines.fixed_step import TABLEAUX, MLPTape, rk_step
from baselines.ode_rnn import ODERNN, SOLVERS
from bench.batch import SequenceBatch


def one_step(model: ODERNN, h0: torch.Tensor, dt: torch.Tensor, method: str) -> torch.Tensor:
    """The model's step of ``dh/dt = func(h)`` over ``dt`` ``(B, 1)``, as its forward takes it."""
    linears = [(m.weight, m.bias) for m in model.func if isinstance(m, torch.nn.Linear)]
    tape = MLPTape(linears, "tanh", final_tanh=False, record=False)
    tableau = TABLEAUX[method]
    coefs = [a * dt for a in tableau.coefficients]
    with torch.no_grad():
        return rk_step(lambda n, z: tape(z), h0, tableau, coefs, 0)


@pytest.mark.parametrize("method", SOLVERS)
def test_step_equals_torchdiffeq_on_one_series(method: str) -> None:
    torch.manual_seed(0)
    model = ODERNN(2, 3, hidden_size=5, hidden_hidden_size=7, solver=method).double()
    h0 = torch.randn(1, 5, dtype=torch.float64)
    dt = torch.tensor([[0.37]], dtype=torch.float64)
    ours = one_step(model, h0, dt, method)
    with torch.no_grad():
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
    together = one_step(model, h0, dts, "rk4")
    for b in range(3):
        with torch.no_grad():
            alone = torchdiffeq.odeint(
                lambda t, h: model.func(h), h0[b], torch.cat([dts.new_zeros(1), dts[b]]), method="rk4"
            )[-1]
        torch.testing.assert_close(together[b], alone, rtol=1e-12, atol=1e-12)


def reference_logits(model: ODERNN, batch: SequenceBatch, method: str) -> torch.Tensor:
    """Series by series: torchdiffeq.odeint over each gap, then model.cell where observed."""
    func = lambda t, h: model.func(h)  # noqa: E731
    logits = []
    for b in range(batch.values.shape[0]):
        h = batch.values.new_zeros(1, model.hidden_size)
        for k in range(int(batch.lengths[b])):
            if k > 0:
                h = torchdiffeq.odeint(func, h, batch.times[b, k - 1 : k + 1], method=method)[-1]
            if batch.mask[b, k].any():
                x = torch.cat([batch.values[b, k], batch.mask[b, k].to(h.dtype)]).unsqueeze(0)
                h = model.cell(x, h)
        logits.append(model.classifier(h)[0])
    return torch.stack(logits)


@pytest.mark.parametrize("method", SOLVERS)
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-10), (torch.float32, 1e-5)],
                         ids=["float64", "float32"])  # fmt: skip
@pytest.mark.parametrize("time_scale", [1.0, 0.005])
def test_forward_and_gradients_match_the_reference_loop(time_scale, dtype, tol, method) -> None:
    torch.manual_seed(2)
    model = ODERNN(3, 4, hidden_size=6, hidden_hidden_size=5, solver=method).to(dtype)
    batch = make_batch([11, 8], missing=0.5, time_scale=time_scale, seed=7)
    batch.mask[0, 4] = False  # a step with nothing observed in one series: h must only evolve
    batch.mask[:, 6] = False  # a step with nothing observed in any series
    batch = SequenceBatch(batch.values.to(dtype), batch.times.to(dtype), batch.mask,
                          batch.lengths, batch.labels)  # fmt: skip
    results = []
    for forward in (model, lambda b: reference_logits(model, b, method)):
        model.zero_grad()
        logits = forward(batch)
        torch.nn.functional.cross_entropy(logits, torch.tensor([1, 3])).backward()
        results.append((logits.detach(), [p.grad.clone() for p in model.parameters()]))
    (ours, our_grads), (ref, ref_grads) = results
    torch.testing.assert_close(ours, ref, rtol=tol, atol=tol)
    for a, b in zip(our_grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_fast_recurrence_equals_the_reference_on_real_series(ct_batch) -> None:
    # reference sizes (hidden 32, 32 x 3), float64, real CharacterTrajectories series
    torch.manual_seed(0)
    model = ODERNN(3, 20).double()
    batch = SequenceBatch(ct_batch.values.double(), ct_batch.times.double(), ct_batch.mask,
                          ct_batch.lengths, ct_batch.labels)  # fmt: skip
    results = []
    for forward in (model, lambda b: reference_logits(model, b, "rk4")):
        model.zero_grad()
        logits = forward(batch)
        torch.nn.functional.cross_entropy(logits, batch.labels).backward()
        results.append((logits.detach(), [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-10, atol=1e-10)
    for a, b in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_backward_is_the_exact_derivative() -> None:
    # gradcheck of the hand-written reverse pass (values and every parameter), float64, tiny
    torch.manual_seed(0)
    model = ODERNN(2, 3, hidden_size=3, hidden_hidden_size=4, num_hidden_layers=2).double()
    batch = make_batch([5, 4], channels=2, missing=0.4, seed=3)
    batch.mask[0, 2] = False
    names = [n for n, _ in model.named_parameters()]

    def logits(values, *params):
        b = SequenceBatch(values, batch.times.double(), batch.mask, batch.lengths, batch.labels)
        return torch.func.functional_call(model, dict(zip(names, params, strict=True)), (b,))

    values = batch.values.double().requires_grad_()
    params = [p.detach().clone().requires_grad_() for p in model.parameters()]
    assert torch.autograd.gradcheck(logits, (values, *params))


def test_no_grad_forward_equals_the_recorded_one() -> None:
    torch.manual_seed(0)
    model = ODERNN(3, 4, hidden_size=6)
    batch = make_batch([9, 6], missing=0.3, seed=1)
    with torch.no_grad():
        plain = model(batch)
    torch.testing.assert_close(model(batch).detach(), plain, rtol=0, atol=0)


def test_config_records_the_solver() -> None:
    config = ODERNN(3, 2).config
    assert config["solver"] == "rk4" and config["steps_per_gap"] == 1
    sizes = {k: config[k] for k in ("hidden_size", "hidden_hidden_size", "num_hidden_layers")}
    assert sizes == {"hidden_size": 32, "hidden_hidden_size": 32, "num_hidden_layers": 3}
