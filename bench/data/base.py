"""What every data module shares: in-memory datasets of dicts and the DataLoader plumbing.

Loaders: train shuffled with a generator seeded by ``seed`` (reproducible order), validation
and test in order. ``num_workers=0`` by default: the data already sits in memory as tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from bench.batch import collate_sequences

SPLITS = ("train", "val", "test")
# A model's per-split preprocessing: name -> function (values, times, mask, lengths) -> (N, ...),
# run once per split by the data module into SequenceBatch.extras[name] (see bench.models.base).
Extras = Mapping[str, Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]]


def check_extras(extras: Extras | None) -> dict[str, Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]]:
    """``extras`` as a dict; ValueError (one line) unless it maps names to functions."""
    if extras is None:
        return {}
    if not isinstance(extras, Mapping) or not all(isinstance(k, str) and callable(f) for k, f in extras.items()):
        raise ValueError(f"extras must map names to functions (values, times, mask, lengths) -> tensor, got {extras!r}")
    return dict(extras)


def check_rate(name: str, hz: Any) -> float:
    """``hz`` as a float in (0, 1], else ValueError naming the argument."""
    if isinstance(hz, bool) or not isinstance(hz, int | float) or not 0.0 < float(hz) <= 1.0:
        raise ValueError(f"{name} must be a rate factor in (0, 1], got {hz!r}")
    return float(hz)


def check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> Any:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_split(split: str) -> str:
    return check_choice("split", split, SPLITS)


class SequenceDataset(Dataset):
    """Series held as tensors; item ``i`` is the dict :func:`collate_sequences` stacks.

    ``values`` ``(N, L, C)`` float32, ``times`` ``(N, L)`` float32, ``mask`` ``(N, L, C)`` bool,
    ``lengths`` ``(N,)`` int64, ``labels`` ``(N,)`` int64, ``extras`` name -> ``(N, ...)``.
    """

    def __init__(
        self,
        values: Tensor,
        times: Tensor,
        mask: Tensor,
        lengths: Tensor,
        labels: Tensor,
        extras: dict[str, Tensor] | None = None,
    ):
        self.tensors = {
            "values": values,
            "times": times,
            "mask": mask,
            "lengths": lengths,
            "labels": labels,
        }
        self.extras = dict(extras or {})
        n = len(labels)
        for key, tensor in [*self.tensors.items(), *self.extras.items()]:
            if len(tensor) != n:
                raise ValueError(f"SequenceDataset: {key} has {len(tensor)} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.tensors["labels"])

    def __getitem__(self, i: int) -> dict[str, Any]:
        item: dict[str, Any] = {k: v[i] for k, v in self.tensors.items()}
        item["extras"] = {k: v[i] for k, v in self.extras.items()}
        return item


class SequenceDataModule(LightningDataModule):
    """Lightning data module base: subclasses build ``_dataset(split, hz)`` (cached by them)."""

    #: names of the loaders ``val_dataloader`` returns, in order (its ``dataloader_idx``).
    val_dataloader_names: list[str] = ["val"]

    def __init__(self, batch_size: int, eval_batch_size: int | None, seed: int, num_workers: int):
        super().__init__()
        for key, value, low in (
            ("batch_size", batch_size, 1),
            ("eval_batch_size", eval_batch_size or 1, 1),
            ("num_workers", num_workers, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{key} must be an integer >= {low}, got {value!r}")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.seed = int(seed)
        self.num_workers = num_workers
        self.train_hz = self.eval_hz = 1.0

    def _dataset(self, split: str, hz: float) -> Dataset:
        raise NotImplementedError

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(
            dataset,
            batch_size=self.batch_size if shuffle else self.eval_batch_size,
            shuffle=shuffle,
            generator=generator,
            collate_fn=collate_sequences,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Training split at ``train_hz``, shuffled (seeded: the same order for the same seed)."""
        return self._loader(self._dataset("train", self.train_hz), shuffle=True)

    def test_dataloader(self) -> DataLoader:
        """Test split at ``eval_hz``, in order."""
        return self._loader(self._dataset("test", self.eval_hz), shuffle=False)

    def eval_dataloader(self, split: str, hz: float | None = None) -> DataLoader:
        """Any split at any rate in (0, 1] (default ``eval_hz``), in order, for evaluation grids."""
        hz = self.eval_hz if hz is None else check_rate("hz", hz)
        return self._loader(self._dataset(check_split(split), hz), shuffle=False)
