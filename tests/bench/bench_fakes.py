"""Tiny stand-ins for the harness tests: a GRU classifier, failing models, a synthetic data module.

``install(monkeypatch=None)`` registers the models, routes dataset ``"fake"`` to
:class:`FakeDataModule` and ``"scripted"`` to :class:`ScriptedDataModule`, and adds suite
``"fake"`` (two conditions x models x seeds, seconds to run). Used in-process by the tests and by the subprocess driver in the kill -9 test.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

import bench.suites
import bench.tasks.base
from bench.data import DataNotFoundError, SequenceBatch, collate_sequences
from bench.models import list_models, register_model, registry
from bench.models.base import last_valid
from bench.records import RunSpec
from bench.suites import TIME_MODES, Suite


class FakeGRU(nn.Module):
    code_version = "1"
    batch_extras: dict = {}
    time_scale_invariant = True  # reads values only

    def __init__(self, num_inputs: int, num_classes: int, hidden_size: int = 8):
        super().__init__()
        self.config = {"hidden_size": hidden_size}
        self.rnn = nn.GRU(num_inputs, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, batch: SequenceBatch) -> torch.Tensor:
        out, _ = self.rnn(batch.values)
        return self.head(last_valid(out, batch.lengths))


class FakeNaN(FakeGRU):
    """Produces NaN logits: the run must be recorded as failed (NaN loss)."""

    def forward(self, batch: SequenceBatch) -> torch.Tensor:
        return super().forward(batch) * float("nan")


class FakeClock(FakeGRU):
    """Reads the timestamps as an extra channel: a clock scale changes what it computes."""

    time_scale_invariant = False

    def __init__(self, num_inputs: int, num_classes: int, hidden_size: int = 8):
        super().__init__(num_inputs + 1, num_classes, hidden_size)

    def forward(self, batch: SequenceBatch) -> torch.Tensor:
        out, _ = self.rnn(torch.cat([batch.values, batch.times[..., None]], dim=-1))
        return self.head(last_valid(out, batch.lengths))


class FakeCrash(FakeGRU):
    def forward(self, batch: SequenceBatch) -> torch.Tensor:
        raise RuntimeError("fake model crashed on purpose")


class CountingClassifier(nn.Module):
    """A linear read-out of the channel means that counts the examples it evaluates."""

    def __init__(self, num_inputs: int, num_classes: int):
        super().__init__()
        self.head = nn.Linear(num_inputs, num_classes)
        self.evaluated = 0

    def forward(self, batch: SequenceBatch) -> torch.Tensor:
        if not self.training:
            self.evaluated += len(batch)
        return self.head(batch.values.mean(1))


class FakeDataModule:
    """Two channels, three classes: the class sets the sign pattern of the channel means."""

    val_dataloader_names = ["val_train_rate", "val_eval_rate"]
    num_inputs = 2
    num_classes = 3

    def __init__(self, data_dir: Any = None, train_hz: float = 1.0, eval_hz: float = 1.0,
                 time: str = "index", missing_rate: float = 0.0, batch_size: int = 16, seed: int = 0,
                 extras: tuple[str, ...] = (), train_time_scale: float = 1.0, eval_time_scale: float = 1.0):  # fmt: skip
        if data_dir is not None and not (data_dir / "fake.txt").exists():
            raise DataNotFoundError(f"fake data not found in {data_dir}: put fake.txt there")
        self.train_hz, self.eval_hz, self.time, self.batch_size, self.seed = train_hz, eval_hz, time, batch_size, seed
        self.train_time_scale, self.eval_time_scale = train_time_scale, eval_time_scale

    def prepare_data(self) -> None:
        pass

    def setup(self, stage: str | None = None) -> None:
        pass

    def _items(self, split: str, hz: float, scale: float = 1.0) -> list[dict]:
        g = torch.Generator().manual_seed({"train": 0, "val": 1, "test": 2}[split])
        n, length = 48, max(2, int(20 * hz))
        labels = torch.arange(n) % 3
        signs = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0]])[labels]
        values = signs[:, None, :] + 0.5 * torch.randn(n, length, 2, generator=g)
        return [
            {"values": values[i], "times": scale * torch.arange(length, dtype=torch.float32),
             "mask": torch.ones(length, 2, dtype=torch.bool), "lengths": torch.tensor(length),
             "labels": labels[i]}
            for i in range(n)
        ]  # fmt: skip

    def _loader(self, split: str, hz: float, shuffle: bool = False, scale: float = 1.0) -> DataLoader:
        g = torch.Generator().manual_seed(self.seed)
        return DataLoader(self._items(split, hz, scale), batch_size=self.batch_size, shuffle=shuffle,
                          generator=g, collate_fn=collate_sequences)  # fmt: skip

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.train_hz, shuffle=True, scale=self.train_time_scale)

    def val_dataloader(self) -> list[DataLoader]:
        return [self._loader("val", self.train_hz, scale=self.train_time_scale),
                self._loader("val", self.eval_hz, scale=self.eval_time_scale)]

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_hz, scale=self.eval_time_scale)

    def eval_dataloader(self, split: str, hz: float) -> DataLoader:
        return self._loader(split, hz, scale=self.train_time_scale if split == "train" else self.eval_time_scale)

    def describe(self) -> dict[str, Any]:
        return {"dataset": "fake", "train_hz": self.train_hz, "eval_hz": self.eval_hz, "time": self.time,
                "train_time_scale": self.train_time_scale, "eval_time_scale": self.eval_time_scale}


# The scripted task (model selection as the tables use it): how many of SCRIPT_N examples the
# weights trained for ``epoch + 1`` epochs get right, per split and rate. Validation peaks early
# and then falls, at a different epoch at each rate, with a tie that the earliest epoch must win;
# the test counts differ at every (rate, epoch) and from validation's, so a test accuracy names
# the weights, the rate and the split it was measured with.
SCRIPT_RATES = (0.25, 0.375, 0.5, 0.75, 1.0)  # bench.suites.EVAL_RATES
SCRIPT_EPOCHS = 5
SCRIPT_N = 40
SCRIPT_VAL = {0.5: (8, 30, 12, 30, 10), 1.0: (6, 14, 33, 33, 9)}  # peaks: epoch 1 and epoch 2


def script_correct(split: str, hz: float, epoch: int) -> int:
    """Examples of ``split`` at rate ``hz`` that the weights after ``epoch`` (0-based) classify right."""
    r = SCRIPT_RATES.index(hz)
    if split == "val":
        return SCRIPT_VAL[hz][epoch] if hz in SCRIPT_VAL else 20 + epoch
    if split == "test":
        return 2 + 7 * r + epoch  # 2..34: distinct for every (rate, epoch)
    return SCRIPT_N // 2


def script_acc(split: str, hz: float, epoch: int) -> float:
    return script_correct(split, hz, epoch) / SCRIPT_N


class ScriptedModel(nn.Module):
    """Weights that say how long they trained: a buffer counts training steps, and in eval mode
    the model gets :func:`script_correct` examples right for the split and rate it is shown
    (:class:`ScriptedDataModule` writes them into the values). Restoring an epoch's
    ``state_dict`` restores that epoch's accuracies. A bias keeps the loss trainable."""

    code_version = "1"
    batch_extras: dict = {}

    def __init__(self, num_inputs: int, num_classes: int, steps_per_epoch: int = 2):
        super().__init__()
        self.config = {"steps_per_epoch": steps_per_epoch}
        self.num_classes, self.steps_per_epoch = num_classes, steps_per_epoch
        self.bias = nn.Parameter(torch.zeros(num_classes))
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    def forward(self, batch: SequenceBatch) -> torch.Tensor:
        if self.training:
            self.steps += 1
            predicted = batch.labels
        else:
            epoch = int(self.steps) // self.steps_per_epoch - 1
            split = ("train", "val", "test")[int(batch.values[0, 0, 0])]
            right = script_correct(split, float(batch.values[0, 0, 1]), epoch)
            wrong = batch.values[:, 0, 2] >= right  # (B,) the item's index in its split
            predicted = torch.where(wrong, (batch.labels + 1) % self.num_classes, batch.labels)
        return 10.0 * nn.functional.one_hot(predicted, self.num_classes).float() + self.bias


class ScriptedDataModule(FakeDataModule):
    """SCRIPT_N series per split whose values carry (split code, rate, index in the split)."""

    def _items(self, split: str, hz: float, scale: float = 1.0) -> list[dict]:
        length = max(2, int(8 * hz))
        code = ("train", "val", "test").index(split)
        return [
            {"values": torch.tensor([code, hz, i], dtype=torch.float32).expand(length, 3),
             "times": scale * torch.arange(length, dtype=torch.float32),
             "mask": torch.ones(length, 3, dtype=torch.bool), "lengths": torch.tensor(length),
             "labels": torch.tensor(i % 3)}
            for i in range(SCRIPT_N)
        ]  # fmt: skip

    num_inputs = 3


def scripted_spec(train_hz: float, eval_hz: float, seed: int = 0) -> RunSpec:
    """A run of the scripted task as the timescale suite runs it: both selections, the rate curve."""
    train = dict(epochs=SCRIPT_EPOCHS, batch_size=SCRIPT_N // 2, lr=1e-2, eval_rates=list(SCRIPT_RATES),
                 throughput_warmup=0, throughput_iters=0)  # fmt: skip
    return RunSpec(suite="fake", task="classification", dataset="scripted", condition=f"{train_hz}->{eval_hz}",
                   model="fake-scripted", seed=seed, profile="smoke",
                   data={"train_hz": train_hz, "eval_hz": eval_hz, "time": "index"}, train=train,
                   model_args={"steps_per_epoch": 2})  # fmt: skip


# "fake": the fake suite's default models; "fake-ok": a suite of the model that trains fine.
FAKE_TAGS = {"fake-gru": ("fake", "fake-ok"), "fake-nan": ("fake",)}
FAKE_MODELS = {"fake-gru": FakeGRU, "fake-nan": FakeNaN, "fake-crash": FakeCrash, "fake-clock": FakeClock,
               "fake-scripted": ScriptedModel}  # fmt: skip


def fake_suite(profile: str, seeds, time: str = "index", models=("fake-gru", "fake-nan")) -> list[RunSpec]:
    train = dict(epochs=2, batch_size=16, lr=1e-2, limit_train_batches=None, limit_eval_batches=None,
                 eval_rates=[0.5, 1.0], throughput_warmup=1, throughput_iters=2)  # fmt: skip
    return [
        RunSpec(suite="fake", task="classification", dataset="fake", condition=cond, model=m,
                seed=s, profile=profile, data={"train_hz": tr, "eval_hz": ev, "time": time},
                train=train, model_args={"hidden_size": 8})  # fmt: skip
        for cond, tr, ev in (("50->100", 0.5, 1.0), ("100->50", 1.0, 0.5))
        for m in models
        for s in seeds
    ]


def clock_specs(models) -> list[RunSpec]:
    """Two conditions that differ only in the clock's scale (the ``timestamps`` suite's shape)."""
    train = dict(epochs=2, batch_size=16, lr=1e-2, eval_rates=[1.0], throughput_warmup=0, throughput_iters=0)
    return [
        RunSpec(suite="fake", task="classification", dataset="fake", condition=f"ts {a}->{b}", model=m, seed=0,
                profile="smoke", data={"train_hz": 1.0, "eval_hz": 1.0, "time": "index", "train_time_scale": a,
                                       "eval_time_scale": b}, train=train)  # fmt: skip
        for a, b in ((0.5, 1.0), (1.0, 0.5))
        for m in models
    ]


def install(monkeypatch: Any = None) -> None:
    """Register the fakes; with ``monkeypatch`` everything (the model registry too) is undone after
    the test, without it (subprocess drivers) they stay for the life of the process."""
    if monkeypatch is not None:
        monkeypatch.setattr(registry, "MODELS", registry.MODELS.copy())
    for name, cls in FAKE_MODELS.items():
        if name not in list_models():
            register_model(name, f"{__name__}:{cls.__name__}", f"test stand-in: {cls.__doc__ or name}",
                           tags=FAKE_TAGS.get(name, ()))  # fmt: skip
    real = bench.tasks.base.make_datamodule

    def make_datamodule(name: str, **kwargs: Any) -> Any:
        fake = {"fake": FakeDataModule, "scripted": ScriptedDataModule}.get(name)
        return fake(**kwargs) if fake is not None else real(name, **kwargs)

    suite = Suite("fake suite for tests", fake_suite, "fake", TIME_MODES)
    if monkeypatch is None:
        bench.tasks.base.make_datamodule = make_datamodule
        bench.suites.SUITES["fake"] = suite
    else:
        monkeypatch.setattr(bench.tasks.base, "make_datamodule", make_datamodule)
        monkeypatch.setitem(bench.suites.SUITES, "fake", suite)
