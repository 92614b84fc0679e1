"""Model registry: names, errors that list what is valid, and the model interface."""

from __future__ import annotations

import pytest
import torch

from bench.models import create_model, get_model_entry, list_models, model_parameters

HIPPO = ["hippo-legs", "hippo-legs-ts", "hippo-legt", "hippo-lagt", "hippo-tlagt", "hippo-glagt", "hippo-fout"]
BASELINES = ["lstm", "gru", "gru-d", "ode-rnn", "gru-dt", "gru-decay", "gru-ode", "ncde", "lmu", "lmu-voelker"]
DEEP_SSM = ["s4d", "s4d-lin", "lssl", "mamba"]


def test_list_models_contents() -> None:
    names = list_models()
    assert names == HIPPO + BASELINES + DEEP_SSM
    assert len(set(names)) == len(names)


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown model 'hippo-legz'") as err:
        create_model("hippo-legz", 3, 20)
    for name in list_models():
        assert name in str(err.value)


def test_unknown_override_lists_accepted() -> None:
    with pytest.raises(ValueError, match="does not take bogus") as err:
        create_model("hippo-legs", 3, 20, bogus=1)
    assert "memory_order" in str(err.value) and "hidden_size" in str(err.value)


def test_fixed_arguments_are_not_overrides() -> None:
    assert "measure" not in model_parameters("hippo-legt")
    assert get_model_entry("hippo-legt").fixed == {"measure": "legt"}
    with pytest.raises(ValueError, match="does not take measure"):
        create_model("hippo-legt", 3, 20, measure="legs")


@pytest.mark.parametrize("name", list_models())
def test_create_model_follows_the_interface(name: str) -> None:
    model = create_model(name, 3, 20, hidden_size=8)
    assert isinstance(model, torch.nn.Module)
    assert isinstance(model.config, dict) and model.config["hidden_size"] == 8
    assert isinstance(type(model).code_version, str) and type(model).code_version
    assert isinstance(type(model).batch_extras, dict) and all(map(callable, type(model).batch_extras.values()))


def test_entries_of_one_class_are_versioned_per_measure(monkeypatch) -> None:
    # fout's matrices changed: its records are stale, the other HiPPO entries' are not
    assert get_model_entry("hippo-fout").code_version() == "1+fout.2"
    assert {get_model_entry(n).code_version() for n in HIPPO if n != "hippo-fout"} == {"1"}
    assert get_model_entry("lstm").code_version() == get_model_entry("lstm").load().code_version
    cls = get_model_entry("hippo-legs").load()
    monkeypatch.setattr(cls, "code_version", "9")  # a class-wide bump reaches every entry
    assert {get_model_entry(n).code_version().split("+")[0] for n in HIPPO} == {"9"}


def test_s4d_entries_are_versioned_per_init() -> None:
    # S4D-LegS's B is clipped as s4's: a bump of its own on top of the class-wide version
    assert get_model_entry("s4d").code_version() == "2+legs.2"
    assert get_model_entry("s4d-lin").code_version() == "2"
    assert create_model("s4d", 3, 5, hidden_size=8, n_layers=1).config["b_clip"] == 2.0


@pytest.mark.parametrize("name", HIPPO)
def test_hippo_config_records_the_memory(name: str) -> None:
    model = create_model(name, 3, 20, hidden_size=8, memory_order=5)
    cfg = model.config
    assert cfg["measure"] == name.removeprefix("hippo-").removesuffix("-ts")
    assert cfg["memory_order"] == 5 and cfg["method"] == "bilinear"
    assert cfg["timestamped"] is name.endswith("-ts")  # the reference's tlsi cell
    assert cfg["theta"] == (None if cfg["measure"] == "legs" else 100.0)
    assert create_model(name, 3, 20, hidden_size=8).config["memory_order"] == 8  # N = H


def test_hippo_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown method"):
        create_model("hippo-legs", 3, 20, method="rk4")
    with pytest.raises(ValueError, match="only supported for legs"):
        create_model("hippo-legt", 3, 20, timestamped=True)
    with pytest.raises(ValueError, match="memory_order must be a positive integer"):
        create_model("hippo-legs", 3, 20, memory_order=0)
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        create_model("hippo-legs", 3, 20, hidden_size=-1)
