"""Data layer of hippo-bench: one batch type, Lightning data modules, file readers.

Datasets are registered by name in :mod:`bench.data.registry` (``python -m bench ls datasets``);
:func:`make_datamodule` builds one by name, including ``"uea:<Name>"`` for any dataset of the UEA
multivariate archive. The data modules (Lightning, scikit-learn, the readers) load on first use,
so ``import bench.data.paths`` stays light.
"""

from __future__ import annotations

from typing import Any

from bench.batch import SequenceBatch, collate_sequences
from bench.data.registry import get_dataset_entry, list_datasets, make_datamodule, register_dataset

# name -> "module:attribute", imported on first access (PEP 562)
_LAZY = {
    "CharacterTrajectoriesDataModule": "bench.data.character_trajectories:CharacterTrajectoriesDataModule",
    "MNISTDataModule": "bench.data.mnist:MNISTDataModule",
    "UEADataModule": "bench.data.uea:UEADataModule",
    "DataFormatError": "bench.data.formats:DataFormatError",
    "DataNotFoundError": "bench.data.paths:DataNotFoundError",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from bench.registry import load_target

        return load_target(_LAZY[name])
    raise AttributeError(f"module 'bench.data' has no attribute {name!r}")


__all__ = [
    "CharacterTrajectoriesDataModule",
    "DataFormatError",
    "DataNotFoundError",
    "MNISTDataModule",
    "SequenceBatch",
    "UEADataModule",
    "collate_sequences",
    "get_dataset_entry",
    "list_datasets",
    "make_datamodule",
    "register_dataset",
]
