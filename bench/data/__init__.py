"""Data layer of hippo-bench: one batch type, Lightning data modules, file readers.

``DATASETS`` maps a dataset name (as ``python -m bench ls datasets`` lists it) to
``(class path, one-line description)``; :func:`make_datamodule` builds one by name, including
``"uea:<Name>"`` for any dataset of the UEA multivariate archive.
"""

from __future__ import annotations

from typing import Any

from bench.data.batch import SequenceBatch, collate_sequences
from bench.data.character_trajectories import CharacterTrajectoriesDataModule
from bench.data.formats import DataFormatError
from bench.data.mnist import MNISTDataModule
from bench.data.paths import DataNotFoundError
from bench.data.uea import UEADataModule

DATASETS: dict[str, tuple[str, str]] = {
    "character-trajectories": (
        "bench.data.character_trajectories.CharacterTrajectoriesDataModule",
        "UEA CharacterTrajectories, 3 channels x 182 steps at 200 Hz, 20 classes, 2000/429/429 (NCDE/HiPPO protocol)",
    ),
    "smnist": (
        "bench.data.mnist.MNISTDataModule",
        "sequential MNIST, 784 steps x 1 channel, 54000/6000/10000",
    ),
    "pmnist": (
        "bench.data.mnist.MNISTDataModule",
        "permuted MNIST (bit-reversal permutation), 784 x 1, 54000/6000/10000",
    ),
    "uea:<Name>": (
        "bench.data.uea.UEADataModule",
        "any UEA multivariate archive dataset, e.g. uea:BasicMotions (NCDE protocol)",
    ),
}


def make_datamodule(name: str, **kwargs: Any):
    """The data module registered as ``name`` (a key of :data:`DATASETS`, or ``uea:<Name>``)."""
    if name == "character-trajectories":
        return CharacterTrajectoriesDataModule(**kwargs)
    if name == "smnist":
        return MNISTDataModule(**{"permute": None, **kwargs})
    if name == "pmnist":
        return MNISTDataModule(**{"permute": "bit_reversal", **kwargs})
    if name.startswith("uea:") and len(name) > 4:
        return UEADataModule(name[4:], **kwargs)
    raise ValueError(
        f"unknown dataset {name!r}; expected one of {sorted(DATASETS)} (uea:<Name> for any UEA dataset)"
    )


__all__ = [
    "DATASETS",
    "CharacterTrajectoriesDataModule",
    "DataFormatError",
    "DataNotFoundError",
    "MNISTDataModule",
    "SequenceBatch",
    "UEADataModule",
    "collate_sequences",
    "make_datamodule",
]
