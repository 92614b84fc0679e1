"""Fixtures of the baseline tests: a few real CharacterTrajectories series."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.data import CharacterTrajectoriesDataModule, SequenceBatch


@pytest.fixture(scope="session")
def ct_batch(data_dir: Path) -> SequenceBatch:
    """Six real training series (physical time, 5 ms steps), cut to their first 50 steps, with
    ``lengths`` 50, 37, 50, 12, 50, 2 (the shorter ones padded with their real continuation)."""
    dm = CharacterTrajectoriesDataModule(
        data_dir, time="physical", batch_size=6, seed=0, download=False
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    steps = 50
    return SequenceBatch(
        batch.values[:, :steps],
        batch.times[:, :steps],
        batch.mask[:, :steps],
        torch.tensor([50, 37, 50, 12, 50, 2]),
        batch.labels,
    )
