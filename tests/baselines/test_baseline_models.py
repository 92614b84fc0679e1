"""Behaviour every baseline shares, on synthetic batches with tiny sizes."""

from __future__ import annotations

import pytest
import torch
from baseline_batches import NUM_CLASSES, make_batch, pad_with_garbage, select

from bench.models.registry import create_model, model_parameters

TINY = {
    "lstm": {"hidden_size": 8},
    "gru": {"hidden_size": 8},
    "gru-d": {"hidden_size": 8},
    "ode-rnn": {"hidden_size": 8, "hidden_hidden_size": 8},
    "ncde": {"hidden_size": 8, "hidden_hidden_size": 8},
    "lmu": {"hidden_size": 8, "memory_order": 6, "theta": 10.0},
}
REFERENCE_HIDDEN = {"lstm": 256, "gru": 256, "gru-d": 47, "ode-rnn": 32, "ncde": 32, "lmu": 256}
# "2": the ODE-RNN and the Neural CDE moved to the fast solves of baselines/fixed_step.py (the
# same numbers to float rounding; bumped so records of the old default path are rerun)
CODE_VERSION = {"lstm": "1", "gru": "1", "gru-d": "2", "ode-rnn": "3", "ncde": "3", "lmu": "2"}
# The Neural CDE experiments' models: read-out at the last observation, weight-norm penalty.
EXPERIMENT_MODELS = ("gru-d", "ode-rnn", "ncde")


def tiny(name: str, channels: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, channels, NUM_CLASSES, **TINY[name])


@pytest.mark.parametrize("time_scale", [1.0, 0.005], ids=["index-time", "physical-time"])
@pytest.mark.parametrize("name", list(TINY))
def test_logits_and_gradients_are_finite(name: str, time_scale: float) -> None:
    model = tiny(name)
    batch = make_batch([12, 9, 12, 5], missing=0.3, time_scale=time_scale)
    logits = model(batch)
    assert logits.shape == (4, NUM_CLASSES)
    assert torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, batch.labels).backward()
    # every trainable parameter gets a finite gradient that is not zero (the batch has missing
    # values, so GRU-D's input decay acts too)
    for pname, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), f"{name}: {pname}"
            assert (p.grad != 0).any(), f"{name}: {pname} got a zero gradient"


@pytest.mark.parametrize("missing", [0.0, 0.3], ids=["complete", "missing"])
@pytest.mark.parametrize("name", list(TINY))
def test_padding_does_not_change_logits(name: str, missing: float) -> None:
    model = tiny(name).eval()
    lengths = [10, 7, 4]
    batch = make_batch(lengths, missing=missing, seed=3)
    padded = pad_with_garbage(batch, 16)
    with torch.no_grad():
        together = model(padded)
        alone = torch.cat([model(select(batch, i, n)) for i, n in enumerate(lengths)])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", list(TINY))
@pytest.mark.parametrize("bad", ["hidden_size", "num_classes", "num_inputs"])
def test_bad_sizes_raise_a_clear_error(name: str, bad: str) -> None:
    args = {"num_inputs": 3, "num_classes": NUM_CLASSES, **TINY[name], bad: 0}
    with pytest.raises(ValueError, match=f"{bad} must be a positive integer"):
        create_model(name, args.pop("num_inputs"), args.pop("num_classes"), **args)


@pytest.mark.parametrize("name", ["ode-rnn", "ncde"])
def test_unknown_solver_raises(name: str) -> None:
    with pytest.raises(ValueError, match="solver must be one of"):
        create_model(name, 3, NUM_CLASSES, solver="dopri8")


@pytest.mark.parametrize("name", list(TINY))
def test_interface_and_reference_defaults(name: str) -> None:
    assert model_parameters(name)["hidden_size"].default == REFERENCE_HIDDEN[name]
    model = tiny(name)
    assert model.code_version == CODE_VERSION[name]
    assert isinstance(model.batch_extras, dict) and all(map(callable, model.batch_extras.values()))
    assert model.config["hidden_size"] == TINY[name]["hidden_size"]
    assert model.config["num_classes"] == NUM_CLASSES


@pytest.mark.parametrize("name", EXPERIMENT_MODELS)
def test_read_out_at_the_last_observation(name: str) -> None:
    # The data modules pad a series' tail by repeating its last value and mark it unobserved:
    # these models read their state at the last observation, as the experiments' final_index.
    model = tiny(name).eval()
    batch = make_batch([12, 12, 12], seed=4)
    last = torch.tensor([12, 8, 5])  # observed steps of each series
    tail = torch.arange(12)[None] >= last[:, None]
    values = torch.where(tail[..., None], batch.values[torch.arange(3), last - 1][:, None], batch.values)
    padded = type(batch)(values, batch.times, batch.mask & ~tail[..., None], batch.lengths, batch.labels)
    with torch.no_grad():
        logits = model(padded)
        alone = torch.cat([model(select(batch, i, int(n))) for i, n in enumerate(last)])
    torch.testing.assert_close(logits, alone, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", EXPERIMENT_MODELS)
def test_weight_norm_penalty_of_the_experiments(name: str) -> None:
    model = tiny(name)
    penalised = model.func if name == "ncde" else model  # the vector field only, for the NCDE
    expected = 0.03 * sum(p.norm() for p in penalised.parameters())
    torch.testing.assert_close(model.regularization(), expected)
    assert model.config["weight_penalty"] == 0.03
    assert float(create_model(name, 3, NUM_CLASSES, **TINY[name], weight_penalty=0).regularization()) == 0.0
    with pytest.raises(ValueError, match="weight_penalty must be a number >= 0"):
        create_model(name, 3, NUM_CLASSES, **TINY[name], weight_penalty=-1)
