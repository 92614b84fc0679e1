"""The missing-data suite's drop on the real CharacterTrajectories series, point by point.

The Neural CDE experiments (and shared/DESIGN.md, "Data protocols" 8): one ``torch.Generator``
seeded 56789 draws ``randperm(L)`` for series 0, 1, 2, ... in turn (TRAIN then TEST, L = 182
after padding), and the first ``int(L * rate)`` time points of each permutation lose every
channel. The padded tail stays unobserved whether or not a point of it was drawn.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.data import CharacterTrajectoriesDataModule
from bench.data.formats import read_arff_dimensions
from bench.data.uea import MISSING_SEED, drop_time_points, rate_indices

L = 182
RATES = (0.3, 0.5, 0.7)  # bench.suites.missing


def reference_drops(n: int, rate: float) -> torch.Tensor:
    """``(n, L)`` bool: the time points the reference code removes, series after series."""
    generator = torch.Generator().manual_seed(56789)
    dropped = torch.zeros(n, L, dtype=torch.bool)
    for row in dropped:
        row[torch.randperm(L, generator=generator)[: int(L * rate)]] = True
    return dropped


@pytest.fixture(scope="module")
def padded(ct_dir):
    """``(N, L, C)`` float64: TRAIN then TEST, each channel padded with its last value."""
    folder = ct_dir / "CharacterTrajectories"
    values = np.concatenate([
        read_arff_dimensions([folder / f"CharacterTrajectoriesDimension{d}_{s}.arff" for d in (1, 2, 3)]).values
        for s in ("TRAIN", "TEST")
    ])  # fmt: skip
    for series in values:
        for channel in series:
            last = np.flatnonzero(~np.isnan(channel))[-1]
            channel[last + 1 :] = channel[last]
    assert values.shape[1:] == (3, L) and not np.isnan(values).any()
    return torch.from_numpy(values).transpose(1, 2).contiguous()


def test_the_seed_is_the_references():
    assert MISSING_SEED == 56789


@pytest.mark.parametrize("rate", RATES)
def test_drop_removes_int_l_rate_points_of_every_series_in_all_channels(padded, rate):
    out = drop_time_points(padded, rate)
    gone = torch.isnan(out)
    assert (gone.all(-1) == gone.any(-1)).all()  # a dropped time point loses every channel
    assert (gone[..., 0].sum(1) == int(L * rate)).all()  # exactly int(L * rate) per series
    assert torch.equal(gone[..., 0], reference_drops(len(padded), rate))  # the seeded points
    torch.testing.assert_close(out[~gone], padded[~gone], rtol=0, atol=0)  # the rest untouched
    assert not torch.isnan(padded).any()  # the input is left as it was


@pytest.mark.parametrize("rate", RATES)
def test_the_data_module_masks_exactly_the_dropped_points(ct_dir, padded, rate):
    dm = CharacterTrajectoriesDataModule(ct_dir, missing_rate=rate, download=False)
    dm.setup()
    full = CharacterTrajectoriesDataModule(ct_dir, download=False)
    full.setup()
    within = full._data["mask"][..., 0]  # (N, L): up to each series' last observation
    unobserved = ~dm._data["mask"]  # (N, L, C)
    expected = reference_drops(len(padded), rate) | ~within
    assert torch.equal(unobserved, expected[..., None].expand_as(unobserved))
    assert dm.describe()["missing_rate"] == rate and dm.describe()["missing_seed"] == 56789
    # at another rate the same physical points are missing (the drop happens at 200 Hz)
    test_rows = torch.from_numpy(dm._data["splits"]["test"])
    half = dm.eval_dataloader("test", 0.5).dataset.tensors["mask"]
    assert torch.equal(half, dm._data["mask"][test_rows][:, rate_indices(L, 0.5)])
