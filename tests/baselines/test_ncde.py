"""Neural CDE: precomputed and in-model coefficients agree, the path is torchcde's, the solver
takes one rk4 step per sample, and the fast solve equals torchcde.cdeint, outputs and gradients."""

from __future__ import annotations

import pytest
import torch
import torchcde
from baseline_batches import make_batch

from baselines import fixed_step
from baselines.fixed_step import cde_solve, hermite_derivative
from baselines.ncde import NeuralCDE, cde_coefficients
from bench.batch import SequenceBatch


def tiny(**kw) -> NeuralCDE:
    torch.manual_seed(0)
    return NeuralCDE(3, 4, hidden_size=6, hidden_hidden_size=5, **kw)


def with_extras(batch: SequenceBatch, coeffs: torch.Tensor) -> SequenceBatch:
    return SequenceBatch(
        batch.values, batch.times, batch.mask, batch.lengths, batch.labels, {"cde_coeffs": coeffs}
    )


def as_dtype(batch: SequenceBatch, dtype: torch.dtype) -> SequenceBatch:
    return SequenceBatch(
        batch.values.to(dtype), batch.times.to(dtype), batch.mask, batch.lengths, batch.labels
    )


def logits_and_grads(model: NeuralCDE, batch: SequenceBatch) -> tuple[torch.Tensor, list]:
    model.zero_grad()
    logits = model(batch)
    torch.nn.functional.cross_entropy(logits, batch.labels).backward()
    return logits.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("lengths", [[12, 12, 12], [12, 8, 5]], ids=["full", "padded"])
def test_precomputed_extras_give_the_same_logits(lengths: list[int]) -> None:
    model = tiny()
    batch = make_batch(lengths, missing=0.3, seed=4)
    coeffs = cde_coefficients(batch.values, batch.times, batch.mask, batch.lengths)
    assert coeffs.shape == (3, 11, 4 * 4)
    torch.testing.assert_close(model(with_extras(batch, coeffs)), model(batch), rtol=0, atol=0)


def test_coefficients_are_torchcdes_on_time_and_nan_values() -> None:
    batch = make_batch([12, 12], missing=0.3, seed=4)
    path = torch.cat(
        [batch.times.unsqueeze(-1), torch.where(batch.mask, batch.values, torch.nan)], dim=-1
    )
    reference = torchcde.hermite_cubic_coefficients_with_backward_differences(path)
    ours = cde_coefficients(batch.values, batch.times, batch.mask, batch.lengths)
    torch.testing.assert_close(ours, reference, rtol=0, atol=0)


# ----------------------------------------------------------------------------- fast vs torchcde
SOLVES = [("rk4", 1.0), ("rk4", 0.5), ("euler", 1.0), ("midpoint", 1.0), ("midpoint", 0.5)]
TOLERANCES = {torch.float64: 1e-10, torch.float32: 1e-5}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(("solver", "step_size"), SOLVES, ids=[f"{m}-{s}" for m, s in SOLVES])
def test_fast_solve_equals_torchcde_on_real_series(ct_batch, solver, step_size, dtype) -> None:
    # reference sizes: hidden 32, vector field 32 wide x 3 hidden layers
    batch = as_dtype(ct_batch, dtype)
    results = {}
    for backend in ("fast", "torchcde"):
        torch.manual_seed(0)
        model = NeuralCDE(3, 20, solver=solver, step_size=step_size, backend=backend).to(dtype)
        assert model.config["backend"] == backend
        results[backend] = logits_and_grads(model, batch)
    (fast, fast_grads), (ref, ref_grads) = results["fast"], results["torchcde"]
    tol = TOLERANCES[dtype]
    torch.testing.assert_close(fast, ref, rtol=tol, atol=tol)
    for ours, theirs in zip(fast_grads, ref_grads, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=tol, atol=tol)


def test_fast_solve_reads_each_series_at_its_last_knot(ct_batch) -> None:
    # one series alone, cut at its length, gives the logits it gets in the padded batch
    model = NeuralCDE(3, 20).eval()
    with torch.no_grad():
        together = model(ct_batch)
        for b, n in enumerate(ct_batch.lengths.tolist()):
            alone = SequenceBatch(
                ct_batch.values[b : b + 1, :n], ct_batch.times[b : b + 1, :n],
                ct_batch.mask[b : b + 1, :n], ct_batch.lengths[b : b + 1], ct_batch.labels[b : b + 1],
            )  # fmt: skip
            torch.testing.assert_close(model(alone)[0], together[b], rtol=1e-5, atol=1e-5)


def test_hermite_derivative_is_torchcdes(ct_batch) -> None:
    coeffs = cde_coefficients(ct_batch.values, ct_batch.times, ct_batch.mask).double()
    spline = torchcde.CubicSpline(coeffs)
    times = torch.tensor([0.0, 0.25, 1 / 3, 1.0, 1.5, 7.0, 7 + 2 / 3, 48.0, 48.999, 49.0])
    ours = hermite_derivative(coeffs, times.double())
    for i, t in enumerate(times):
        torch.testing.assert_close(ours[:, i], spline.derivative(t.double()), rtol=1e-12, atol=1e-12)


def test_no_grad_solve_equals_the_recorded_one() -> None:
    model = tiny()
    batch = make_batch([9, 6], missing=0.3, seed=1)
    with torch.no_grad():
        plain = model(batch)
    torch.testing.assert_close(model(batch).detach(), plain, rtol=0, atol=0)


def test_fast_backward_is_the_exact_derivative() -> None:
    # gradcheck of the hand-written reverse pass, in float64 on a tiny solve
    torch.manual_seed(0)
    linears = [(torch.randn(4, 3), torch.randn(4)), (torch.randn(4, 4), torch.randn(4)),
               (torch.randn(6, 4), torch.randn(6))]  # fmt: skip  H = 3, P = 2
    params = [t.double().requires_grad_() for pair in linears for t in pair]
    z0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    coeffs = torch.randn(2, 4, 8, dtype=torch.float64)

    def solve(z0, *params):
        pairs = list(zip(params[::2], params[1::2], strict=True))
        return cde_solve(pairs, z0, coeffs, knots=4, method="rk4", steps_per_knot=2)

    assert torch.autograd.gradcheck(solve, (z0, *params))


# ----------------------------------------------------------------------------- steps and stages
def test_one_rk4_step_per_sample_torchcde() -> None:
    model = tiny(backend="torchcde")
    calls: list[float] = []
    model.func.register_forward_hook(lambda module, args, out: calls.append(float(args[0])))
    model(make_batch([12, 9]))  # integrates to knot 11, the longest series' last step
    # torchcde evaluates f once to check shapes; then rk4 (3/8 rule) takes 4 evaluations per unit step
    assert len(calls) == 1 + 4 * 11
    assert calls[1:5] == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0], abs=1e-6)
    assert calls[-1] == pytest.approx(11.0)


@pytest.mark.parametrize(("solver", "step_size", "nodes"), [
    ("rk4", 1.0, [0, 1 / 3, 2 / 3, 1]), ("rk4", 0.5, [0, 1 / 6, 1 / 3, 1 / 2]),
    ("midpoint", 1.0, [0, 1 / 2]), ("euler", 0.5, [0]),
])  # fmt: skip
def test_fast_solve_stage_times(monkeypatch, solver: str, step_size: float, nodes: list) -> None:
    # the fast solve reads dX/dt once, at every stage time of the whole solve, and calls the
    # vector field once per stage; the same stage times as torchdiffeq's fixed grid
    seen: list[torch.Tensor] = []
    calls = []
    derivative, call = fixed_step.hermite_derivative, fixed_step.MLPTape.__call__
    monkeypatch.setattr(fixed_step, "hermite_derivative", lambda c, t: seen.append(t) or derivative(c, t))
    monkeypatch.setattr(fixed_step.MLPTape, "__call__", lambda self, x: calls.append(1) or call(self, x))
    tiny(solver=solver, step_size=step_size)(make_batch([12, 9]))  # to knot 11
    steps = round(11 / step_size)
    expected = [s * step_size + c for s in range(steps) for c in nodes]
    assert len(seen) == 1
    assert seen[0].tolist() == pytest.approx(expected, abs=1e-12)
    assert len(calls) == steps * len(nodes)


# ----------------------------------------------------------------------------- backends and options
def test_backend_choice() -> None:
    assert tiny().config["backend"] == "fast"
    assert tiny(step_size=0.25).config["backend"] == "fast"
    assert tiny(solver="dopri5").config["backend"] == "torchcde"
    assert tiny(adjoint=True).config["backend"] == "torchcde"
    assert tiny(step_size=0.3).config["backend"] == "torchcde"  # not 1/n: steps would miss knots
    assert tiny(backend="torchcde").config["backend"] == "torchcde"


@pytest.mark.parametrize("kw", [{"solver": "dopri5"}, {"adjoint": True}, {"step_size": 0.3}])
def test_fast_backend_refuses_what_it_cannot_do(kw: dict) -> None:
    with pytest.raises(ValueError, match="backend='fast' needs"):
        tiny(backend="fast", **kw)


def test_gradients_reach_the_values_through_torchcde() -> None:
    # a path that itself requires grad goes through torchcde, which differentiates the spline
    batch = make_batch([6, 6], seed=2)
    batch.values.requires_grad_()
    tiny()(batch).sum().backward()
    assert batch.values.grad is not None and batch.values.grad.abs().sum() > 0


def test_time_channel_is_used() -> None:
    model = tiny()
    index = make_batch([10, 10], seed=2)
    physical = SequenceBatch(
        index.values, index.times * 0.005, index.mask, index.lengths, index.labels
    )
    assert not torch.allclose(model(index), model(physical))


def test_adjoint_gradients_agree_at_a_fine_step() -> None:
    # at step 1 the adjoint's backward rk4 solve is a coarse approximation; at 0.1 it is within ~0.2%
    batch = make_batch([5, 4], seed=6)
    logits, grads = [], []
    for adjoint in (False, True):
        model = tiny(adjoint=adjoint, step_size=0.1)
        out = model(batch)
        out.square().sum().backward()
        logits.append(out.detach())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
        assert model.config["adjoint"] is adjoint
    torch.testing.assert_close(logits[0], logits[1])
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-2, atol=1e-2)


def test_config_records_the_solver() -> None:
    config = NeuralCDE(3, 2).config
    assert (config["solver"], config["step_size"], config["adjoint"]) == ("rk4", 1.0, False)
    assert config["backend"] == "fast"
    sizes = {k: config[k] for k in ("hidden_size", "hidden_hidden_size", "num_hidden_layers")}
    assert sizes == {"hidden_size": 32, "hidden_hidden_size": 32, "num_hidden_layers": 3}
    assert NeuralCDE.batch_extras == {"cde_coeffs": cde_coefficients}


@pytest.mark.parametrize("step_size", [0, -1.0, 2.0])
def test_bad_step_size_raises(step_size: float) -> None:
    with pytest.raises(ValueError, match="step_size must be in"):
        NeuralCDE(3, 2, step_size=step_size)


def test_bad_backend_raises() -> None:
    with pytest.raises(ValueError, match="backend must be one of"):
        NeuralCDE(3, 2, backend="jax")


def test_wrong_extras_shape_raises() -> None:
    batch = make_batch([6, 6])
    with pytest.raises(ValueError, match=r"extras\['cde_coeffs'\] has shape"):
        tiny()(with_extras(batch, torch.zeros(2, 6, 16)))
