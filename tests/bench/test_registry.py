"""Model registry: names, errors that list what is valid, and the model interface."""

from __future__ import annotations

import pytest
import torch

from bench.models import create_model, get_model_entry, list_models, model_parameters

HIPPO = ["hippo-legs", "hippo-legs-ts", "hippo-legt", "hippo-lagt", "hippo-tlagt", "hippo-glagt", "hippo-fout"]
BASELINES = ["lstm", "gru", "gru-d", "ode-rnn", "gru-dt", "gru-decay", "gru-ode", "ncde", "lmu", "lmu-voelker"]
DEEP_SSM = ["s4d", "s4d-lin", "lssl", "mamba"]
ATTENTION = ["transformer", "gla", "gated-deltanet"]


def test_list_models_contents() -> None:
    names = list_models()
    assert names == HIPPO + BASELINES + DEEP_SSM + ATTENTION
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


def test_each_model_file_registers_its_models_with_their_references_and_tags() -> None:
    lstm = get_model_entry("lstm")
    assert lstm.source == "built-in" and lstm.load().__module__ == "baselines.rnn"
    ct = lstm.references["character-trajectories"]
    assert (ct.model_args, ct.epochs, ct.batch_size) == ({"hidden_size": 256}, 100, 100) and "hippo-code" in ct.source
    assert "timescale" in lstm.tags and "missing" in lstm.tags
    # the Neural CDE paper's loop is a protocol the table's models declare beside their families
    ncde = get_model_entry("ncde").reference("character-trajectories", "ncde-paper")
    assert (ncde.epochs, dict(ncde.extra)) == (1000, {"val_every": 10, "lr_plateau_patience": 1, "stop_patience": 50})
    assert get_model_entry("lstm").reference("character-trajectories", "ncde-paper") is ct  # none: its family's


def test_listing_the_models_imports_their_files_but_not_their_heavy_dependencies() -> None:
    import subprocess
    import sys

    code = ("import sys; from bench.models import list_models; names = list_models(); "
            "assert 'ncde' in names and 'baselines.ncde' in sys.modules; "
            "heavy = [m for m in ('torchcde', 'lightning', 'pandas') if m in sys.modules]; assert not heavy, heavy")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_an_outside_model_joins_a_suite_by_tag_with_its_own_reference(monkeypatch) -> None:
    from bench.models import register_model, registry
    from bench.settings import Reference
    from bench.suites import SUITES, build_suite

    monkeypatch.setattr(registry, "MODELS", registry.MODELS.copy())
    mine = Reference({"hidden_size": 24}, epochs=7, batch_size=16, lr=3e-3, source="my paper")
    register_model("my-rnn", "baselines.rnn:GRUClassifier", "a GRU of mine",
                   references={"character-trajectories": mine}, tags=("timescale",))  # fmt: skip
    assert SUITES["timescale"].models[-1] == "my-rnn"
    specs = [s for s in build_suite("timescale", "paper", seeds=[0]) if s.model == "my-rnn"]
    assert len(specs) == 2 and specs[0].model_args == {"hidden_size": 24}
    assert (specs[0].train["epochs"], specs[0].train["batch_size"], specs[0].train["lr"]) == (7, 16, 3e-3)
    assert specs[0].provenance == {}  # a reference of its own: not "family defaults"
    with pytest.raises(ValueError, match="references has 'cifar'; keys are dataset families"):
        register_model("bad", "baselines.rnn:GRUClassifier", references={"cifar": mine})


def test_the_one_registry_serves_models_datasets_suites_and_tasks() -> None:
    from bench.data.registry import DATASETS
    from bench.models import MODELS
    from bench.registry import Registry
    from bench.suites import SUITES
    from bench.tasks import TASKS, get_task

    assert all(isinstance(r, Registry) for r in (MODELS, DATASETS, SUITES, TASKS))
    assert get_task("classification").name == "classification"  # a "module:attr" entry, loaded on use
    with pytest.raises(ValueError, match="unknown suite 'timescal' \\(did you mean 'timescale'\\?\\)"):
        SUITES.get("timescal")
