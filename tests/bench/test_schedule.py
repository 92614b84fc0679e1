"""The Neural CDE paper's training loop as settings: validation every k epochs, a plateau LR
schedule and early stopping (bench.settings.TrainSettings, bench.training)."""

from __future__ import annotations

import math

import pytest
import torch
from bench_fakes import CountingClassifier, FakeDataModule
from torch import nn

from bench.batch import SequenceBatch
from bench.profiles import model_settings
from bench.records import RunSpec, run_id
from bench.settings import OPTIONAL_FIELDS, SettingsError, TrainSettings
from bench.training import Plateau, fit


def reference_stop_epoch(checks: list[tuple[int, float, float]], patience: int) -> int | None:
    """The Neural CDE experiments' ``_train_loop`` stopping rule, transcribed: the first check
    epoch at which it breaks, or None."""
    best_loss, best_acc, loss_epoch, acc_epoch = math.inf, 0.0, 0, 0
    for epoch, loss, acc in checks:
        if loss * 1.0001 < best_loss:
            best_loss, loss_epoch = loss, epoch
        if acc > best_acc * 1.001:
            best_acc, acc_epoch = acc, epoch
        if epoch > loss_epoch + patience or epoch > acc_epoch + patience:
            return epoch
    return None


@pytest.mark.parametrize("seed", range(5))
def test_plateau_stops_where_the_reference_loop_breaks(seed):
    g = torch.Generator().manual_seed(seed)
    # a loss that falls and then wobbles, an accuracy that rises and then wobbles
    epochs = list(range(0, 400, 10))
    noise = torch.rand(len(epochs), 2, generator=g)
    checks = [(e, max(0.05, 2.0 * 0.9 ** (e / 10)) + 0.01 * float(n[0]), min(0.95, e / 200) + 0.01 * float(n[1]))
              for e, n in zip(epochs, noise, strict=True)]  # fmt: skip
    rule = Plateau(50)
    stopped = next((e for e, loss, acc in checks if rule.should_stop(e, loss, acc)), None)
    assert stopped == reference_stop_epoch(checks, 50)
    assert stopped is not None


def test_plateau_waits_for_either_metric():
    rule = Plateau(20)
    # the loss keeps improving, the accuracy stalls from epoch 10: stop after 20 more epochs
    assert [rule.should_stop(e, 1.0 / (e + 1), 0.5) for e in range(0, 40, 10)] == [False, False, False, True]


class Constant(nn.Module):
    """Logits that never change (so validation accuracy and training loss plateau at once)."""

    def __init__(self, num_inputs: int, num_classes: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))
        self.num_classes = num_classes

    def forward(self, batch: SequenceBatch) -> torch.Tensor:
        return torch.zeros(len(batch), self.num_classes) + 0.0 * self.weight


def test_validation_every_k_epochs_and_after_the_last(tmp_path):
    dm = FakeDataModule()
    model = CountingClassifier(dm.num_inputs, dm.num_classes)
    module = fit(model, dm, TrainSettings(epochs=8, val_every=3, batch_size=16), device=torch.device("cpu"),
                 checkpoint_dir=tmp_path)  # fmt: skip
    assert [h["epoch"] for h in module.history] == [0, 3, 6, 7]
    assert module.best_epoch in (0, 3, 6, 7)
    # the two validation loaders (48 series each) were evaluated at those 4 epochs only
    assert model.evaluated == 4 * 2 * 48


def test_lr_plateau_and_early_stop(tmp_path):
    dm = FakeDataModule()
    settings = TrainSettings(epochs=30, lr=1e-3, lr_plateau_patience=1, stop_patience=4, batch_size=16)
    module = fit(Constant(dm.num_inputs, dm.num_classes), dm, settings, device=torch.device("cpu"),
                 checkpoint_dir=tmp_path)  # fmt: skip
    # ReduceLROnPlateau(patience=1): after every two validations without progress, lr / 10
    assert [h["lr"] for h in module.history] == pytest.approx([1e-3, 1e-3, 1e-3, 1e-4, 1e-4, 1e-5])
    # nothing improves after epoch 0: stopped once epoch > 0 + 4
    assert module.stopped_epoch == 5 and len(module.history) == 6
    assert module.best_epoch == 0  # a tie goes to the earliest epoch


def test_the_schedule_fields_keep_old_run_ids():
    plain = TrainSettings()
    assert not set(OPTIONAL_FIELDS) & set(plain.to_dict())
    scheduled = TrainSettings(val_every=10, lr_plateau_patience=1, stop_patience=50)
    assert {k: scheduled.to_dict()[k] for k in OPTIONAL_FIELDS} == {"val_every": 10, "lr_plateau_patience": 1,
                                                                    "stop_patience": 50}
    assert TrainSettings.from_dict(scheduled.to_dict()) == scheduled
    spec = RunSpec("s", "classification", "d", "c", "m", 0, "paper", train=plain.to_dict())
    other = RunSpec("s", "classification", "d", "c", "m", 0, "paper", train=scheduled.to_dict())
    assert run_id(spec, "1") != run_id(other, "1")


@pytest.mark.parametrize(("key", "value"), [("val_every", 0), ("stop_patience", 0), ("lr_plateau_patience", -1),
                                            ("val_every", 1.5)])
def test_bad_schedule_values_are_refused(key, value):
    with pytest.raises(SettingsError, match=key):
        TrainSettings(**{key: value})


def test_the_missing_suite_trains_the_ncde_table_under_its_paper_loop():
    paper, args = model_settings("character-trajectories", "gru-ode", "paper", "ncde-paper")
    assert (paper.epochs, paper.batch_size, paper.lr, paper.val_every, paper.lr_plateau_patience,
            paper.stop_patience) == (1000, 32, 1e-3, 10, 1, 50)  # fmt: skip
    assert args == {"hidden_size": 47}
    quick, _ = model_settings("character-trajectories", "ncde", "quick", "ncde-paper")
    assert (quick.epochs, quick.val_every, quick.stop_patience, quick.lr_plateau_patience) == (8, 1, None, None)
    # models the protocol does not cover keep their own reference
    legs, legs_args = model_settings("character-trajectories", "hippo-legs", "paper", "ncde-paper")
    assert (legs.epochs, legs.batch_size, legs.stop_patience, legs_args) == (100, 100, None, {"hidden_size": 256})
