"""Every rate and clock scale the suites use, on the real CharacterTrajectories series.

The design notes (shared/DESIGN.md, "Data protocols" 6): rate factor ``hz`` keeps the source
indices ``arange(int(L * hz)) // hz`` of the 200 Hz series (L = 182), so a rate subsamples the
whole series, it never cuts it short. The accuracy-versus-rate curves test at
``bench.suites.EVAL_RATES``; the timestamps suite keeps every sample and scales the clock.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from bench.data import CharacterTrajectoriesDataModule
from bench.data.uea import rate_indices
from bench.suites import EVAL_RATES

L, SOURCE_HZ = 182, 200.0
# int(182 * hz) for the curve's rates
LENGTHS = {0.25: 45, 0.375: 68, 0.5: 91, 0.75: 136, 1.0: 182}


def design_indices(length: int, hz: float) -> list[int]:
    """``arange(int(length * hz)) // hz`` in exact arithmetic (the rates are binary fractions)."""
    f = Fraction(hz)
    return [math.floor(k / f) for k in range(math.floor(length * f))]


@pytest.fixture(scope="module")
def modules(ct_dir):
    """CharacterTrajectories in physical and in index time, every rate built on first use."""
    out = {t: CharacterTrajectoriesDataModule(ct_dir, time=t, download=False) for t in ("physical", "index")}
    for dm in out.values():
        dm.setup()
    return out


def test_the_curve_rates_are_the_ones_checked_here():
    assert set(EVAL_RATES) == set(LENGTHS) and {0.5, 1.0} <= set(EVAL_RATES)  # the training rates too


@pytest.mark.parametrize("hz", sorted(LENGTHS))
def test_rate_keeps_the_design_indices_over_the_whole_series(modules, hz):
    kept = design_indices(L, hz)
    assert len(kept) == LENGTHS[hz]
    np.testing.assert_array_equal(rate_indices(L, hz), kept)
    # the whole series, evenly: from the first sample to within two steps of the last
    # (int() drops less than one kept step, the floor less than one source step)
    assert kept[0] == 0 and L - 1 - 2 / hz < kept[-1] <= L - 1
    assert set(np.diff(kept)) <= {math.floor(1 / hz), math.ceil(1 / hz)}
    physical, index = modules["physical"], modules["index"]
    assert physical.seq_len(hz) == len(kept)
    for split in ("train", "val", "test"):
        full = physical.eval_dataloader(split, 1.0).dataset.tensors
        part = physical.eval_dataloader(split, hz).dataset.tensors
        torch.testing.assert_close(part["values"], full["values"][:, kept], rtol=0, atol=0)
        assert torch.equal(part["mask"], full["mask"][:, kept])
        assert torch.equal(part["labels"], full["labels"])
        assert (part["lengths"] == len(kept)).all()
        # physical time: seconds of the kept samples, spanning the series (0.905 s at 200 Hz)
        seconds = torch.tensor(kept, dtype=torch.float64) / SOURCE_HZ
        torch.testing.assert_close(part["times"], seconds.float().expand(len(part["labels"]), -1))
        assert part["times"][0, -1] > (L - 1 - 2 / hz) / SOURCE_HZ
        # index time: the positions 0, 1, 2, ... of the kept samples
        steps = index.eval_dataloader(split, hz).dataset.tensors["times"]
        assert torch.equal(steps, torch.arange(len(kept), dtype=torch.float32).expand_as(steps))
    # what a model is given: a batch of the test loader at that rate
    batch = next(iter(physical.eval_dataloader("test", hz)))
    assert batch.values.shape[1:] == (len(kept), 3) and (batch.lengths == len(kept)).all()


@pytest.mark.parametrize("time", ["index", "physical"])
@pytest.mark.parametrize(("train_scale", "eval_scale"), [(0.5, 1.0), (1.0, 0.5)])
def test_the_timestamps_suites_clocks(ct_dir, modules, time, train_scale, eval_scale):
    """Every sample at 200 Hz; training (and validation loader 0) at one clock, test (and
    validation loader 1) at the other; the values are the unscaled module's."""
    dm = CharacterTrajectoriesDataModule(ct_dir, time=time, train_time_scale=train_scale,
                                         eval_time_scale=eval_scale, download=False)  # fmt: skip
    dm.setup()
    plain = modules[time]
    base = torch.arange(L, dtype=torch.float32) / (SOURCE_HZ if time == "physical" else 1.0)
    val_train, val_eval = (loader.dataset.tensors for loader in dm.val_dataloader())
    loaders = {"train": (dm.train_dataloader(), train_scale), "val_train_rate": (None, train_scale),
               "val_eval_rate": (None, eval_scale), "test": (dm.test_dataloader(), eval_scale)}  # fmt: skip
    for name, (loader, scale) in loaders.items():
        split = name.split("_")[0]
        tensors = {"val_train_rate": val_train, "val_eval_rate": val_eval}.get(name) or loader.dataset.tensors
        reference = plain.eval_dataloader(split, 1.0).dataset.tensors
        assert tensors["values"].shape[1] == L and (tensors["lengths"] == L).all(), name
        torch.testing.assert_close(tensors["times"], (scale * base).expand_as(tensors["times"]), msg=name)
        assert torch.equal(tensors["values"], reference["values"]), name
        assert torch.equal(tensors["mask"], reference["mask"]), name
