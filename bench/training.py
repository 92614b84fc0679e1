"""Training and evaluation of one classifier: a LightningModule around any registered model.

Model selection uses validation dataloader 0 (the *training* rate): after every validation
epoch the module compares its accuracy with the best so far and saves the model's
``state_dict`` with ``torch.save``; the best weights are restored with
``torch.load(weights_only=True)`` before testing. The same run also keeps the weights of the
epoch best at the *evaluation* rate, the reference codes' (optimistic) selection, and tests them
too (:func:`evaluate_eval_selected`): both protocols from one training run (we do not use Lightning's checkpoints, whose
pickled hyperparameters would need ``weights_only=False``). Evaluation after training is a
plain ``no_grad`` loop: test at the evaluation rate, validation at every rate, and test across
a grid of rates.

A run may follow another paper's schedule (:class:`bench.settings.TrainSettings`):
validation only every ``val_every`` epochs (only those epochs are selection candidates and
history entries), ``ReduceLROnPlateau`` on the selection metric, and early stopping on a
plateau of the training loss and accuracy (:class:`Plateau`), as the Neural CDE experiments'
``_train_loop`` does.

Several devices or nodes (``devices``/``num_nodes``/``strategy`` of :func:`fit`) use Lightning's
own strategies (DDP by default when there is more than one process). Validation counts are
summed over the ranks before model selection, so every rank selects the same epoch; only global
rank 0 saves the best weights. The training history (loss, accuracy) is rank 0's shard, and the
runner writes records on rank 0 only (``trainer.is_global_zero``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from bench.batch import SequenceBatch
from bench.models.base import model_optimizer, training_loss
from bench.settings import TrainSettings


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite: the run is recorded as failed."""


def val_metric_names(data_module: Any, num_loaders: int) -> list[str]:
    """History keys for the validation loaders: ``val_acc`` for one, ``val_acc_<name>`` for several.

    CharacterTrajectories names its loaders ``val_train_rate`` and ``val_eval_rate``, giving
    ``val_acc_train_rate`` (model selection) and ``val_acc_eval_rate``.
    """
    if num_loaders == 1:
        return ["val_acc"]
    names = getattr(data_module, "val_dataloader_names", None) or [f"val_{i}" for i in range(num_loaders)]
    return [f"val_acc_{n.removeprefix('val_')}" for n in names]


def val_dataloaders(data_module: Any) -> list[Any]:
    """``val_dataloader()`` as a list (one loader for MNIST, train and eval rate for CT)."""
    loaders = data_module.val_dataloader()
    return list(loaders) if isinstance(loaders, list | tuple) else [loaders]


def distinct_loaders(loaders: Sequence[Any]) -> tuple[list[Any], list[int]]:
    """The loaders over distinct datasets, and for each loader the index of its distinct one.

    With equal training and evaluation rates (the missing-data suite) a data module returns two
    validation loaders over one dataset; each dataset is then evaluated once per epoch.
    """
    distinct: list[Any] = []
    source: list[int] = []
    for loader in loaders:
        dataset = getattr(loader, "dataset", loader)
        match = [j for j, d in enumerate(distinct) if getattr(d, "dataset", d) is dataset]
        if not match:
            distinct.append(loader)
        source.append(match[0] if match else len(distinct) - 1)
    return distinct, source


# The history key of validation at the evaluation rate: the reference codes select on it.
EVAL_RATE_METRIC = "val_acc_eval_rate"


@dataclass
class Selection:
    """One model-selection rule: keep the weights of the epoch with the best ``metric``.

    A tie goes to the earliest epoch (a later epoch must be strictly better).
    """

    metric: str
    path: Path
    best: float = -math.inf
    epoch: int | None = None

    def update(self, value: float, epoch: int) -> bool:
        """Record ``value`` at ``epoch``; True when it is a new best (the caller saves weights)."""
        if value > self.best:  # NaN never is
            self.best, self.epoch = value, epoch
            return True
        return False


@dataclass
class Plateau:
    """The Neural CDE experiments' stopping rule (``common._train_loop``): stop once neither the
    training loss (improving by a relative 1e-4) nor the training accuracy (by a relative 1e-3)
    has improved for more than ``patience`` epochs. Fed at the validation epochs only."""

    patience: int
    best_loss: float = math.inf
    best_acc: float = 0.0
    loss_epoch: int = 0
    acc_epoch: int = 0

    def should_stop(self, epoch: int, train_loss: float, train_acc: float) -> bool:
        if train_loss * 1.0001 < self.best_loss:
            self.best_loss, self.loss_epoch = train_loss, epoch
        if train_acc > self.best_acc * 1.001:
            self.best_acc, self.acc_epoch = train_acc, epoch
        return epoch > self.loss_epoch + self.patience or epoch > self.acc_epoch + self.patience


class SequenceClassifier(L.LightningModule):
    """Cross-entropy around ``model``; keeps a per-epoch history and the best weights.

    ``val_names[i]`` is the history key of validation loader ``val_sources[i]`` (default ``i``):
    several names may share one loader (see :func:`distinct_loaders`). Two selection rules run
    on one training run: ``selection`` on ``val_names[0]`` (the training rate: the honest rule,
    whose weights are loaded after :func:`fit`) and, when the data module validates at an
    evaluation rate too, ``eval_selection`` on ``val_acc_eval_rate`` (the reference codes' rule).
    """

    def __init__(
        self,
        model: nn.Module,
        settings: TrainSettings,
        val_names: Sequence[str],
        checkpoint_dir: Path,
        val_sources: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.settings = settings
        self.val_names = list(val_names)
        self.val_sources = list(range(len(self.val_names)) if val_sources is None else val_sources)
        checkpoint_dir = Path(checkpoint_dir)
        self.selection = Selection(self.val_names[0], checkpoint_dir / "best.pt")
        # Only when the evaluation-rate loader is another dataset than loader 0: with equal rates
        # (the missing-data suite) both rules would pick the same epoch by construction.
        sources = dict(zip(self.val_names, self.val_sources, strict=True))
        self.eval_selection = (
            Selection(EVAL_RATE_METRIC, checkpoint_dir / "best_eval_selected.pt")
            if EVAL_RATE_METRIC in self.val_names[1:] and sources[EVAL_RATE_METRIC] != sources[self.val_names[0]]
            else None
        )
        self.history: list[dict[str, Any]] = []
        self.plateau = None if settings.stop_patience is None else Plateau(settings.stop_patience)
        self.stopped_epoch: int | None = None  # the epoch after which the plateau rule stopped
        self._lr_plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
        self._train_sums = [0.0, 0, 0]  # loss * n, correct, n
        self._val_sums = self._zero_val_sums()
        self._epoch_start = time.perf_counter()

    @property
    def best_epoch(self) -> int | None:
        return self.selection.epoch

    def _zero_val_sums(self) -> list[list[int]]:
        return [[0, 0] for _ in range(max(self.val_sources, default=-1) + 1)]

    def forward(self, batch: SequenceBatch) -> torch.Tensor:
        return self.model(batch)

    def configure_optimizers(self) -> Any:
        """The model's own optimiser if it sets one up, else Adam (:func:`model_optimizer`)."""
        def total_steps() -> int:  # Lightning loads the train loader to count them
            return self.trainer.estimated_stepping_batches if self._trainer is not None else 1

        config = model_optimizer(self.model, lr=self.settings.lr,
                                 weight_decay=self.settings.weight_decay, total_steps=total_steps)
        if self.settings.lr_plateau_patience is None:
            return config
        if isinstance(config, dict) and config.get("lr_scheduler") is not None:
            raise ValueError(f"train setting 'lr_plateau_patience' cannot apply to {type(self.model).__name__}: "
                             "its configure_optimizers already sets a learning-rate schedule")
        optimizer = config["optimizer"] if isinstance(config, dict) else config
        # stepped by hand after each validation (on_validation_epoch_end), as the reference does
        self._lr_plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", patience=self.settings.lr_plateau_patience
        )
        return optimizer

    def _validating(self) -> bool:
        """Whether this epoch ends with a validation (``val_every``)."""
        return self.settings.is_validation_epoch(self.current_epoch)

    def on_train_epoch_start(self) -> None:
        self._train_sums = [0.0, 0, 0]
        self._val_sums = self._zero_val_sums()
        self._epoch_start = time.perf_counter()

    def training_step(self, batch: SequenceBatch, batch_idx: int) -> torch.Tensor:
        loss, logits = training_loss(self.model, batch)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"training loss is {loss.item()} at epoch {self.current_epoch}, batch {batch_idx}"
            )
        n = len(batch)
        self._train_sums[0] += loss.item() * n
        self._train_sums[1] += int((logits.argmax(-1) == batch.labels).sum())
        self._train_sums[2] += n
        self.log("train_loss", loss, prog_bar=True, batch_size=n)
        return loss

    def validation_step(self, batch: SequenceBatch, batch_idx: int, dataloader_idx: int = 0) -> None:
        if not self._validating():
            return
        correct = int((self.model(batch).argmax(-1) == batch.labels).sum())
        self._val_sums[dataloader_idx][0] += correct
        self._val_sums[dataloader_idx][1] += len(batch)

    def _global_val_sums(self) -> list[list[int]]:
        """Validation (correct, seen) per loader, summed over the ranks under DDP."""
        if self.trainer.world_size <= 1:
            return self._val_sums
        counts = torch.tensor(self._val_sums, dtype=torch.float64, device=self.device)
        return self.trainer.strategy.reduce(counts, reduce_op="sum").long().tolist()

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or not self._validating():
            return
        val_sums = self._global_val_sums()
        loss_n, correct, n = self._train_sums
        entry: dict[str, Any] = {
            "epoch": self.current_epoch,
            "train_loss": loss_n / max(n, 1),
            "train_acc": correct / max(n, 1),
        }
        for name, source in zip(self.val_names, self.val_sources, strict=True):
            c, m = val_sums[source]
            entry[name] = c / m if m else float("nan")
        entry["seconds"] = time.perf_counter() - self._epoch_start
        if self._lr_plateau is not None:
            entry["lr"] = self._lr_plateau.optimizer.param_groups[0]["lr"]  # the rate this epoch trained at
            self._lr_plateau.step(entry[self.selection.metric])
        self.history.append(entry)
        for selection in filter(None, (self.selection, self.eval_selection)):
            if selection.update(entry[selection.metric], self.current_epoch) and self.trainer.is_global_zero:
                # one writer; the other ranks load the file after fit
                selection.path.parent.mkdir(parents=True, exist_ok=True)
                torch.save(self.model.state_dict(), selection.path)
        if self.plateau is not None and self.plateau.should_stop(
            self.current_epoch, entry["train_loss"], entry["train_acc"]
        ):
            self.stopped_epoch = self.current_epoch
            self.trainer.should_stop = True
        # the epoch's curves for a Lightning logger (--logger); the record keeps the history itself
        self.log_dict({f"epoch_{k}": float(v) for k, v in entry.items() if k not in ("epoch", "seconds")},
                      rank_zero_only=True)


@torch.no_grad()
def accuracy(
    model: nn.Module, loader: Iterable[SequenceBatch], device: torch.device, limit_batches: int | None
) -> float:
    """Fraction of correct predictions over ``loader`` (its first ``limit_batches`` batches)."""
    return correct_and_total(model, loader, device, limit_batches)[0]


@torch.no_grad()
def correct_and_total(
    model: nn.Module, loader: Iterable[SequenceBatch], device: torch.device, limit_batches: int | None
) -> tuple[float, int]:
    """``(accuracy, examples seen)`` over ``loader`` (its first ``limit_batches`` batches)."""
    model.eval()
    correct = total = 0
    for i, batch in enumerate(loader):
        if limit_batches is not None and i >= limit_batches:
            break
        batch = batch.to(device)
        correct += int((model(batch).argmax(-1) == batch.labels).sum())
        total += len(batch)
    return (correct / total if total else float("nan")), total


def accelerator_for(device: torch.device) -> str:
    return "gpu" if device.type == "cuda" else "cpu"


def fit(
    model: nn.Module,
    data_module: Any,
    settings: TrainSettings,
    *,
    device: torch.device,
    checkpoint_dir: Path,
    callbacks: Sequence[L.Callback] = (),
    logger: Any = None,
) -> SequenceClassifier:
    """Train ``model`` on ``data_module``; return the module with history and best weights loaded.

    The weights loaded are those selected at the training rate. ``settings.devices``,
    ``num_nodes`` and ``strategy`` go to ``lightning.Trainer``; ``strategy="auto"`` with more
    than one process means ``"ddp"``.
    """
    strategy = settings.strategy
    if strategy == "auto" and settings.devices * settings.num_nodes > 1:
        strategy = "ddp"
    val_loaders, val_sources = distinct_loaders(val_dataloaders(data_module))
    module = SequenceClassifier(
        model, settings, val_metric_names(data_module, len(val_sources)), checkpoint_dir, val_sources
    )
    trainer = L.Trainer(
        accelerator=accelerator_for(device),
        devices=settings.devices,
        num_nodes=settings.num_nodes,
        strategy=strategy,
        max_epochs=settings.epochs,
        limit_train_batches=settings.limit_train_batches or 1.0,
        limit_val_batches=settings.limit_eval_batches or 1.0,
        gradient_clip_val=settings.grad_clip,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        logger=logger if logger is not None else False,
        enable_progress_bar=False,  # bench.progress draws its own bars (one live display at a time)
        enable_model_summary=False,
        callbacks=list(callbacks),
    )
    trainer.fit(module, train_dataloaders=data_module.train_dataloader(), val_dataloaders=val_loaders)
    if module.best_epoch is None:
        raise RuntimeError("no validation epoch finished: no weights to select")
    trainer.strategy.barrier("best-weights")  # rank 0 has written them (no-op on one device)
    load_weights(model, module.selection.path, device)
    return module


LOGGERS = ("csv", "tensorboard")


def lightning_logger(kind: str | None, folder: Path) -> Any:
    """Lightning's own logger of ``kind`` (``csv``, ``tensorboard``) writing into ``folder``; None: off."""
    if kind is None:
        return None
    if kind == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(save_dir=str(folder), name="", version="")
    if kind == "tensorboard":
        check_logger(kind)
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(save_dir=str(folder), name="", version="")
    raise ValueError(f"unknown logger {kind!r}; valid: {', '.join(LOGGERS)}")


def check_logger(kind: str | None) -> None:
    """ValueError (one line) for an unknown logger, or TensorBoard without its package."""
    if kind is None:
        return
    if kind not in LOGGERS:
        raise ValueError(f"unknown logger {kind!r}; valid: {', '.join(LOGGERS)}")
    import importlib.util

    if kind == "tensorboard" and not any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX")):
        raise ValueError("--logger tensorboard needs the tensorboard package: pip install tensorboard")


def load_weights(model: nn.Module, path: Path, device: torch.device) -> None:
    """Load a ``state_dict`` saved during training (``weights_only=True``: no pickled code)."""
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    model.to(device)


def evaluate(
    model: nn.Module,
    data_module: Any,
    device: torch.device,
    *,
    val_names: Sequence[str],
    eval_rates: Sequence[float] = (),
    limit_batches: int | None = None,
) -> tuple[dict[str, float], dict[str, float]]:
    """Test accuracy (at the evaluation rate), validation at every rate, and a test-rate curve.

    ``metrics["test_examples"]`` is how many test examples were evaluated: fewer than the test
    set under ``limit_batches`` (the quick MNIST profile), which the report then says.
    """
    test_acc, test_examples = correct_and_total(model, data_module.test_dataloader(), device, limit_batches)
    metrics = {"test_acc": test_acc, "test_examples": test_examples}
    val_loaders, val_sources = distinct_loaders(val_dataloaders(data_module))
    val_accs = [accuracy(model, loader, device, limit_batches) for loader in val_loaders]
    for name, source in zip(val_names, val_sources, strict=True):
        metrics[name] = val_accs[source]
    curve = {
        str(rate): accuracy(model, data_module.eval_dataloader("test", rate), device, limit_batches)
        for rate in eval_rates
    }
    return metrics, curve


def evaluate_eval_selected(
    model: nn.Module,
    module: SequenceClassifier,
    data_module: Any,
    device: torch.device,
    limit_batches: int | None,
    test_acc: float,
) -> dict[str, Any]:
    """The reference codes' model selection: test accuracy at the epoch best at the evaluation rate.

    ``test_acc`` is the test accuracy of the weights ``model`` holds now (selected at the
    training rate); when both rules chose the same epoch it is the answer, and nothing is
    evaluated again. Otherwise the eval-selected weights are loaded, tested, and the
    training-rate weights restored. Empty when the data module has no evaluation-rate loader.
    """
    selection = module.eval_selection
    if selection is None or selection.epoch is None:
        return {}
    out = {"best_epoch_eval_selected": selection.epoch, "selected_on_eval": selection.metric}
    if selection.epoch == module.best_epoch:
        return {"test_acc_eval_selected": test_acc, **out}
    load_weights(model, selection.path, device)
    acc = accuracy(model, data_module.test_dataloader(), device, limit_batches)
    load_weights(model, module.selection.path, device)
    return {"test_acc_eval_selected": acc, **out}
