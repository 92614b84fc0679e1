"""Typed training settings and the per-model reference table."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from bench.models import get_model_entry, list_models
from bench.profiles import model_settings, reference
from bench.runner import run_suite
from bench.settings import (
    FAMILY_DEFAULTS,
    NO_REFERENCE,
    PROFILE_SCALING,
    SettingsError,
    TrainSettings,
)
from bench.suites import build_suite


def test_a_mistyped_key_names_the_key_and_the_valid_keys():
    with pytest.raises(SettingsError) as err:
        TrainSettings.from_dict({"epochs": 2, "throughput_iter": 5})
    message = str(err.value)
    assert "'throughput_iter'" in message and "throughput_iters" in message and "\n" not in message


@pytest.mark.parametrize(("key", "value"), [("epochs", 0), ("epochs", 2.5), ("lr", -1.0), ("lr", True),
                                            ("batch_size", "32"), ("eval_rates", [0.5, 2.0]),
                                            ("grad_clip", 0.0), ("limit_train_batches", 0)])  # fmt: skip
def test_bad_values_are_refused_with_the_key_named(key, value):
    with pytest.raises(SettingsError, match=repr(key)):
        TrainSettings.from_dict({key: value})


def test_settings_round_trip_through_the_spec_dict():
    settings = TrainSettings(epochs=3, eval_rates=(0.5, 1.0), grad_clip=1.0)
    assert TrainSettings.from_dict(settings.to_dict()) == settings
    assert settings.to_dict()["eval_rates"] == [0.5, 1.0]  # JSON-able


@pytest.mark.parametrize("family", list(FAMILY_DEFAULTS))
def test_every_built_in_model_declares_a_sourced_reference_for_every_family(family):
    built_in = [m for m in list_models() if get_model_entry(m).source == "built-in"]
    missing = [m for m in built_in if family not in get_model_entry(m).references]
    assert not missing, f"{family}: no reference settings for {missing}"
    assert all(get_model_entry(m).references[family].source for m in built_in)


def test_profiles_shrink_epochs_and_width_but_keep_batch_and_lr():
    paper, paper_args = model_settings("character-trajectories", "ncde", "paper")
    quick, quick_args = model_settings("character-trajectories", "ncde", "quick")
    assert (paper.epochs, paper.batch_size, paper.lr, paper_args["hidden_size"]) == (100, 32, 1e-3, 32)
    assert (quick.epochs, quick.batch_size, quick.lr, quick_args["hidden_size"]) == (8, 32, 1e-3, 32)
    legs, legs_args = model_settings("character-trajectories", "hippo-legs", "quick")
    assert (legs.batch_size, legs_args["hidden_size"]) == (100, 64)  # capped from 256
    smoke, smoke_args = model_settings("character-trajectories", "ode-rnn", "smoke")
    assert smoke_args == {"hidden_size": 8, "hidden_hidden_size": 8, "num_hidden_layers": 3}
    assert "8 epochs" in PROFILE_SCALING["character-trajectories"]["quick"].description


def test_a_model_without_a_reference_trains_with_the_family_defaults(monkeypatch):
    from bench.models import register_model, registry

    monkeypatch.setattr(registry, "MODELS", registry.MODELS.copy())
    register_model("not-a-built-in", "baselines.rnn:GRUClassifier", "a GRU without references")
    assert reference("mnist", "not-a-built-in") is FAMILY_DEFAULTS["mnist"]
    assert FAMILY_DEFAULTS["mnist"].source == NO_REFERENCE == "no reference: family defaults"
    with pytest.raises(ValueError, match="unknown dataset family 'nope'"):
        model_settings("nope", "lstm", "paper")


def test_models_accepts_any_registered_model_not_only_the_suites_list():
    specs = build_suite("timescale", "smoke", models=["hippo-fout", "hippo-legs-ts"])
    assert {s.model for s in specs} == {"hippo-fout", "hippo-legs-ts"}


def test_a_typo_in_a_spec_fails_before_any_run(tmp_path):
    spec = build_suite("timescale", "smoke", models=["lstm"])[0]
    bad = replace(spec, train={**spec.train, "epoch": 3})
    with pytest.raises(SettingsError, match="'epoch'"):
        run_suite([spec, bad], tmp_path, interactive=False)
    assert not (tmp_path / "timescale").exists()  # nothing ran, nothing written


class _ScheduledModel(nn.Module):
    """A model that sets up its own optimiser: SGD with two groups and a step schedule."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(2, 3), nn.Linear(2, 3)
        self.calls = []

    def configure_optimizers(self, *, lr, weight_decay, total_steps):
        self.calls.append((lr, weight_decay, total_steps))
        opt = torch.optim.SGD([{"params": self.a.parameters()}, {"params": self.b.parameters(), "lr": lr / 10}],
                              lr=lr, weight_decay=weight_decay)  # fmt: skip
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 - step / total_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def test_a_models_own_optimiser_setup_is_used():
    import lightning as L

    from bench.training import SequenceClassifier

    model = _ScheduledModel()
    module = SequenceClassifier(model, TrainSettings(lr=0.5, weight_decay=0.1), ["val_acc"], "unused")
    module.trainer = L.Trainer(max_steps=40, logger=False, enable_progress_bar=False)
    config = module.configure_optimizers()
    assert model.calls == [(0.5, 0.1, 40)]
    assert [g["lr"] for g in config["optimizer"].param_groups] == [0.5, 0.05]
    plain = SequenceClassifier(nn.Linear(2, 3), TrainSettings(lr=0.2, weight_decay=0.01), ["val_acc"], "unused")
    adam = plain.configure_optimizers()
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["weight_decay"] == 0.01


def test_csv_logger_writes_per_epoch_curves(fakes, tmp_path):
    import bench

    result = bench.run("fake", profile="smoke", models=["fake-gru"], seeds=[0], results_dir=tmp_path,
                       device="cpu", interactive=False, logger="csv", report=False)  # fmt: skip
    (record, *_) = result.records
    metrics = tmp_path / "fake" / "curves" / record.id / "metrics.csv"
    header, *rows = metrics.read_text().splitlines()
    assert "epoch_val_acc_train_rate" in header and "epoch_val_acc_eval_rate" in header
    assert sum(1 for r in rows if r.split(",")[header.split(",").index("epoch_train_acc")]) == 2  # 2 epochs


def test_tensorboard_without_its_package_is_one_clear_error(fakes, tmp_path, monkeypatch):
    import importlib.util

    import bench
    from bench.api import UsageError

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(UsageError, match="pip install tensorboard"):
        bench.run("fake", profile="smoke", results_dir=tmp_path, device="cpu", logger="tensorboard")


def test_a_hook_returning_something_else_is_named():
    from bench.models.base import model_optimizer

    class _ListHook(nn.Linear):
        def configure_optimizers(self, *, lr, weight_decay, total_steps):
            return [torch.optim.SGD(self.parameters(), lr=lr)]  # Lightning's list form: not accepted

    with pytest.raises(TypeError, match=r"_ListHook.configure_optimizers must return an optimizer"):
        model_optimizer(_ListHook(2, 3), lr=0.1, weight_decay=0.0, total_steps=5)
