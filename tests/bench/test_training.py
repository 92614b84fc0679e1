"""Training helpers: validation loaders over one dataset are evaluated once."""

from __future__ import annotations

import pytest
import torch
from bench_fakes import CountingClassifier
from torch import nn

from bench.data import CharacterTrajectoriesDataModule, SequenceBatch
from bench.settings import TrainSettings
from bench.training import distinct_loaders, evaluate, fit


@pytest.mark.parametrize(("train_hz", "eval_hz", "distinct"), [(0.5, 0.5, 1), (1.0, 0.5, 2)])
def test_equal_rates_validate_one_dataset_once(data_dir, tmp_path, train_hz, eval_hz, distinct):
    dm = CharacterTrajectoriesDataModule(data_dir / "CharacterTrajectories", train_hz=train_hz,
                                         eval_hz=eval_hz, batch_size=256, download=False)  # fmt: skip
    dm.setup("fit")
    dm.setup("test")
    loaders, sources = distinct_loaders(dm.val_dataloader())
    assert len(loaders) == distinct and sources == [0, 0 if distinct == 1 else 1]
    val_size, test_size = len(loaders[0].dataset), len(dm.test_dataloader().dataset)

    model = CountingClassifier(dm.num_inputs, dm.num_classes)
    module = fit(model, dm, TrainSettings(epochs=1, limit_train_batches=1), device=torch.device("cpu"),
                 checkpoint_dir=tmp_path)  # fmt: skip
    assert model.evaluated == distinct * val_size
    # the reference's selection at the evaluation rate exists only when that rate is another dataset
    assert (module.eval_selection is not None) == (distinct == 2)
    (entry,) = module.history
    assert {"val_acc_train_rate", "val_acc_eval_rate"} <= set(entry)
    assert (entry["val_acc_train_rate"] == entry["val_acc_eval_rate"]) or distinct == 2

    model.evaluated = 0
    metrics, _ = evaluate(model, dm, torch.device("cpu"), val_names=module.val_names)
    assert model.evaluated == test_size + distinct * val_size
    assert metrics["val_acc_train_rate"] == entry["val_acc_train_rate"]  # the selected weights


def test_a_models_regularization_joins_the_training_loss():
    from bench.training import SequenceClassifier

    class Penalised(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(2, 3)

        def forward(self, batch: SequenceBatch) -> torch.Tensor:
            return self.head(batch.values[:, -1])

        def regularization(self) -> torch.Tensor:
            return 2.0 * self.head.weight.norm()

    model = Penalised()
    module = SequenceClassifier(model, TrainSettings(), ["val_acc"], "unused")
    module.on_train_epoch_start()
    g = torch.Generator().manual_seed(0)
    batch = SequenceBatch(torch.randn(4, 5, 2, generator=g), torch.arange(5.0).expand(4, 5),
                          torch.ones(4, 5, 2, dtype=torch.bool), torch.full((4,), 5), torch.tensor([0, 1, 2, 0]))
    loss = module.training_step(batch, 0)
    plain = torch.nn.functional.cross_entropy(model(batch), batch.labels)
    torch.testing.assert_close(loss, plain + 2.0 * model.head.weight.norm())
