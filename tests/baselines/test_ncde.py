"""Neural CDE: precomputed and in-model coefficients agree, the path is torchcde's, and the solver
takes one rk4 step per sample."""

from __future__ import annotations

import pytest
import torch
import torchcde
from baseline_batches import make_batch

from baselines.ncde import NeuralCDE, cde_coefficients
from bench.data.batch import SequenceBatch


def tiny(**kw) -> NeuralCDE:
    torch.manual_seed(0)
    return NeuralCDE(3, 4, hidden_size=6, hidden_hidden_size=5, **kw)


def with_extras(batch: SequenceBatch, coeffs: torch.Tensor) -> SequenceBatch:
    return SequenceBatch(
        batch.values, batch.times, batch.mask, batch.lengths, batch.labels, {"cde_coeffs": coeffs}
    )


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


def test_one_rk4_step_per_sample() -> None:
    model = tiny()
    calls: list[float] = []
    model.func.register_forward_hook(lambda module, args, out: calls.append(float(args[0])))
    model(make_batch([12, 9]))  # integrates to knot 11, the longest series' last step
    # torchcde evaluates f once to check shapes; then rk4 (3/8 rule) takes 4 evaluations per unit step
    assert len(calls) == 1 + 4 * 11
    assert calls[1:5] == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0], abs=1e-6)
    assert calls[-1] == pytest.approx(11.0)


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
    sizes = {k: config[k] for k in ("hidden_size", "hidden_hidden_size", "num_hidden_layers")}
    assert sizes == {"hidden_size": 32, "hidden_hidden_size": 32, "num_hidden_layers": 3}
    assert NeuralCDE.batch_extras == ("cde_coeffs",)


@pytest.mark.parametrize("step_size", [0, -1.0, 2.0])
def test_bad_step_size_raises(step_size: float) -> None:
    with pytest.raises(ValueError, match="step_size must be in"):
        NeuralCDE(3, 2, step_size=step_size)


def test_wrong_extras_shape_raises() -> None:
    batch = make_batch([6, 6])
    with pytest.raises(ValueError, match=r"extras\['cde_coeffs'\] has shape"):
        tiny()(with_extras(batch, torch.zeros(2, 6, 16)))
