"""Dataset registry: one line per dataset, resolved lazily (``name -> "module:Class"``), like the
models' (:mod:`bench.models.registry`).

``make_datamodule(name, **kwargs)`` builds any registered dataset, and ``uea:<Name>`` any dataset
of the UEA multivariate archive (read from ``.ts`` or per-dimension ``.arff`` files in the data
directory). Data modules import Lightning, scikit-learn and the readers only when one is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.registry import Registry, load_target

UEA_PREFIX = "uea:"
UEA_TARGET = "bench.data.uea:UEADataModule"

# Sampling rates of UEA datasets, where the archive's description states one (Hz).
UEA_SAMPLE_RATES_HZ: dict[str, float] = {"CharacterTrajectories": 200.0}


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: its data module, fixed constructor arguments, and what it holds.

    ``family`` names its reference training settings (:mod:`bench.settings`); ``sample_rate_hz``
    is the rate of the recording (None: unknown; rate factors still work, physical time needs it).
    """

    name: str
    target: str  # "package.module:ClassName"
    description: str
    family: str
    num_inputs: int | None = None
    length: int | None = None
    num_classes: int | None = None
    sample_rate_hz: float | None = None
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def load(self) -> type:
        return load_target(self.target)

    def shape(self) -> str:
        """``"C x L"`` for listings (``?`` where unknown before reading the files)."""
        return f"{self.num_inputs or '?'} x {self.length or '?'}"


DATASETS: Registry[DatasetEntry] = Registry("dataset")


def register_dataset(name: str, target: str, description: str, family: str, **info: Any) -> None:
    """Register ``name`` as ``target`` (``"module:Class"``); ``info``: sizes, rate, ``fixed``."""
    DATASETS.add(name, DatasetEntry(name, target, description, family, **info))


def list_datasets() -> list[str]:
    """Names of every registered dataset, in registration order (``uea:<Name>`` is not listed)."""
    return DATASETS.names()


def get_dataset_entry(name: str, sample_rate_hz: float | None = None) -> DatasetEntry:
    """The entry of ``name``, or of ``uea:<Name>`` (any UEA dataset); ValueError listing valid names."""
    if name in DATASETS:
        return DATASETS.get(name)
    if name.startswith(UEA_PREFIX) and len(name) > len(UEA_PREFIX):
        uea = name[len(UEA_PREFIX) :]
        rate = sample_rate_hz if sample_rate_hz is not None else UEA_SAMPLE_RATES_HZ.get(uea)
        return DatasetEntry(name, UEA_TARGET, f"UEA archive dataset {uea} (NCDE/HiPPO protocol)",
                            "character-trajectories", sample_rate_hz=rate, fixed={"name": uea})  # fmt: skip
    raise ValueError(
        f"unknown dataset {name!r}; valid: {', '.join(list_datasets())}, or uea:<Name> for any UEA "
        "archive dataset whose files are in the data directory"
    )


def make_datamodule(name: str, **kwargs: Any) -> Any:
    """The data module registered as ``name`` (or ``uea:<Name>``), built with ``kwargs``."""
    entry = get_dataset_entry(name, kwargs.get("sample_rate_hz"))
    return entry.load()(**{**entry.fixed, **kwargs})


# --- the registry: one line per dataset ----------------------------------------------------
register_dataset("character-trajectories", "bench.data.character_trajectories:CharacterTrajectoriesDataModule",
                 "UEA CharacterTrajectories, 2000/429/429 (NCDE/HiPPO protocol)", "character-trajectories",
                 num_inputs=3, length=182, num_classes=20, sample_rate_hz=200.0)  # fmt: skip
register_dataset("smnist", "bench.data.mnist:MNISTDataModule", "sequential MNIST, 54000/6000/10000", "mnist",
                 num_inputs=1, length=784, num_classes=10, fixed={"permute": None})  # fmt: skip
register_dataset("pmnist", "bench.data.mnist:MNISTDataModule",
                 "permuted MNIST (bit-reversal permutation), 54000/6000/10000", "mnist",
                 num_inputs=1, length=784, num_classes=10, fixed={"permute": "bit_reversal"})  # fmt: skip
