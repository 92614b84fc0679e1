"""Tiny stand-ins for the harness tests: a GRU classifier, failing models, a synthetic data module.

``install(monkeypatch=None)`` registers the models, routes dataset ``"fake"`` to
:class:`FakeDataModule` and adds suite ``"fake"`` (two conditions x models x seeds, seconds
to run). Used in-process by the tests and by the subprocess driver in the kill -9 test.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

import bench.runner
import bench.suites
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


FAKE_MODELS = {"fake-gru": FakeGRU, "fake-nan": FakeNaN, "fake-crash": FakeCrash, "fake-clock": FakeClock}


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
            register_model(name, f"{__name__}:{cls.__name__}", f"test stand-in: {cls.__doc__ or name}")
    real = bench.runner.make_datamodule

    def make_datamodule(name: str, **kwargs: Any) -> Any:
        return FakeDataModule(**kwargs) if name == "fake" else real(name, **kwargs)

    suite = Suite("fake suite for tests", fake_suite, ("fake-gru", "fake-nan"), TIME_MODES)
    if monkeypatch is None:
        bench.runner.make_datamodule = make_datamodule
        bench.suites.SUITES["fake"] = suite
    else:
        monkeypatch.setattr(bench.runner, "make_datamodule", make_datamodule)
        monkeypatch.setitem(bench.suites.SUITES, "fake", suite)
