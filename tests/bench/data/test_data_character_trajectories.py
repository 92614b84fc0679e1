"""CharacterTrajectories on the real shared files: the reference protocol, step by step."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from baselines.cde_path import cde_coefficients
from bench.data import CharacterTrajectoriesDataModule
from bench.data.formats import read_arff_dimensions
from bench.models.base import observed_lengths


@pytest.fixture(scope="module")
def physical(ct_dir):
    dm = CharacterTrajectoriesDataModule(
        ct_dir, train_hz=1.0, eval_hz=0.5, time="physical", download=False
    )
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def raw(ct_dir):
    """(N, 3, 182) float64 with NaN, labels 1..20 as ints: TRAIN then TEST, read directly."""
    folder = ct_dir / "CharacterTrajectories"
    parts = [
        read_arff_dimensions(
            [folder / f"CharacterTrajectoriesDimension{d}_{s}.arff" for d in (1, 2, 3)]
        )
        for s in ("TRAIN", "TEST")
    ]
    return np.concatenate([p.values for p in parts]), np.concatenate(
        [p.labels for p in parts]
    ).astype(int)


def test_split_sizes_and_labels(physical, raw):
    splits = physical._data["splits"]
    assert {k: len(v) for k, v in splits.items()} == {"train": 2000, "val": 429, "test": 429}
    assert len(np.unique(np.concatenate(list(splits.values())))) == 2858
    labels = physical._data["labels"].numpy()
    np.testing.assert_array_equal(labels, raw[1] - 1)  # "1".."20" -> 0..19, row by row
    assert labels.min() == 0 and labels.max() == 19 and physical.num_classes == 20
    # Stratified: every class keeps its share in each split (within one series).
    for split, rows in splits.items():
        share = np.bincount(labels[rows], minlength=20) / len(rows)
        assert np.abs(share - np.bincount(labels) / 2858).max() < 1.5 / len(rows), split


def test_lengths_and_physical_time(physical):
    full, half = physical.eval_dataloader("test", 1.0), physical.eval_dataloader("test", 0.5)
    a, b = next(iter(full)), next(iter(half))
    assert a.values.shape[1:] == (182, 3) and b.values.shape[1:] == (91, 3)
    assert (a.lengths == 182).all() and (b.lengths == 91).all()
    assert physical.seq_len(1.0) == 182 and physical.seq_len(0.5) == 91 and physical.num_inputs == 3
    assert torch.allclose(a.times[0, 1:] - a.times[0, :-1], torch.tensor(0.005))
    assert torch.allclose(b.times[0, 1:] - b.times[0, :-1], torch.tensor(0.010))
    # The same trajectory at both rates: every other sample, spanning the same time.
    torch.testing.assert_close(b.values, a.values[:, ::2])
    torch.testing.assert_close(b.times, a.times[:, ::2])
    assert abs(float(a.times[0, -1]) - 0.905) < 1e-6 and abs(float(b.times[0, -1]) - 0.900) < 1e-6


def test_default_loaders_use_the_protocol_rates(physical):
    assert next(iter(physical.train_dataloader())).values.shape[1] == 182
    assert [next(iter(ld)).values.shape[1] for ld in physical.val_dataloader()] == [182, 91]
    assert next(iter(physical.test_dataloader())).values.shape[1] == 91
    assert len(physical.test_dataloader().dataset) == 429


def test_index_time(ct_dir):
    dm = CharacterTrajectoriesDataModule(ct_dir, eval_hz=0.5, download=False)
    batch = next(iter(dm.eval_dataloader("val", 0.5)))
    assert batch.times[0].tolist() == list(range(91))


def test_normalisation_uses_training_data_only(physical, raw):
    values, _ = raw
    # Pad each channel with its last value, independently of the module's code.
    padded = values.copy()
    for series in padded:
        for channel in series:
            last = np.flatnonzero(~np.isnan(channel))[-1]
            channel[last + 1 :] = channel[last]
    train = padded[physical._data["splits"]["train"]]
    mean, std = train.mean(axis=(0, 2)), train.std(axis=(0, 2), ddof=1)
    np.testing.assert_allclose(physical._data["mean"].numpy(), mean, rtol=1e-10)
    np.testing.assert_allclose(physical._data["std"].numpy(), std, rtol=1e-10)
    all_mean = padded.mean(axis=(0, 2))
    assert np.abs(all_mean - mean).max() > 1e-4  # statistics of everything would differ
    normalised = physical._data["values"].numpy()
    expected = (padded.transpose(0, 2, 1) - mean) / (std + 1e-5)
    np.testing.assert_allclose(normalised, expected, atol=1e-5)
    train_values = normalised[physical._data["splits"]["train"]]
    np.testing.assert_allclose(train_values.mean(axis=(0, 1)), 0, atol=1e-5)
    np.testing.assert_allclose(train_values.std(axis=(0, 1)), 1, atol=1e-3)


def test_short_channels_padded_with_their_last_value(physical, raw):
    values, _ = raw
    ends = (~np.isnan(values)).sum(-1)  # (N, 3) per-channel lengths
    short = np.flatnonzero(ends.min(1) < ends.max(1))
    assert len(short) == 39
    data = physical._data["values"].numpy()
    for n in short:
        for c in range(3):
            tail = data[n, ends[n, c] - 1 :, c]
            assert np.all(tail == tail[0])
    # observed up to the series' last observation in any channel; the padded tail after it is not
    within = np.arange(values.shape[-1])[None] < ends.max(1)[:, None]  # (N, L)
    mask = physical._data["mask"].numpy()
    assert (mask == within[..., None]).all()
    assert 0.3 < 1 - within.mean() < 0.4  # about a third of all steps is padding


def test_missing_data(ct_dir):
    dm = CharacterTrajectoriesDataModule(
        ct_dir, missing_rate=0.3, eval_hz=0.5, extras={"cde_coeffs": cde_coefficients}, download=False
    )
    dm.setup()
    mask, values = dm._data["mask"], dm._data["values"]
    full = CharacterTrajectoriesDataModule(ct_dir, download=False)
    full.setup()
    within = full._data["mask"][..., 0]  # (N, L): before each series' padded tail
    assert ((~mask).all(-1) == (~mask).any(-1)).all()  # a dropped time point loses all channels
    assert (mask <= within[..., None]).all()  # the padded tail stays unobserved
    dropped = ~mask & within[..., None]
    assert (dropped[..., 0].sum(1) <= int(182 * 0.3)).all()  # int(L * rate) points of all L
    assert 0.27 < dropped[..., 0].sum() / within.sum() < 0.33
    assert not torch.isnan(values).any()
    n, t = torch.nonzero(dropped[..., 0])[0].tolist()
    expected = values[n, t - 1] if t > 0 else torch.zeros(3)
    torch.testing.assert_close(values[n, t], expected)  # forward filled
    batch = next(iter(dm.train_dataloader()))
    assert batch.extras["cde_coeffs"].shape == (32, 181, 16)
    assert torch.isfinite(batch.extras["cde_coeffs"]).all()
    half = next(iter(dm.test_dataloader()))
    assert half.extras["cde_coeffs"].shape == (32, 90, 16)
    seen = torch.arange(half.values.shape[1])[None] < observed_lengths(half.mask, half.lengths)[:, None]
    assert 0.2 < (~half.mask[..., 0] & seen).sum() / seen.sum() < 0.4  # before the last observation
    # The seed is fixed: a second module drops the same points.
    again = CharacterTrajectoriesDataModule(ct_dir, missing_rate=0.3, download=False)
    again.setup()
    assert torch.equal(again._data["mask"], mask)


def test_determinism_and_shuffle_seed(ct_dir, physical):
    same = CharacterTrajectoriesDataModule(ct_dir, time="physical", eval_hz=0.5, download=False)
    other = CharacterTrajectoriesDataModule(ct_dir, seed=1, download=False)
    same.setup()
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(same._data["splits"][split], physical._data["splits"][split])
    first = [next(iter(dm.train_dataloader())).labels for dm in (physical, same, other)]
    assert torch.equal(first[0], first[1]) and not torch.equal(first[0], first[2])
    assert torch.equal(
        next(iter(physical.train_dataloader())).labels, first[0]
    )  # same order each time


def test_describe_and_cached_setup_speed(ct_dir, physical):
    info = physical.describe()
    assert info["split_sizes"] == {"train": 2000, "val": 429, "test": 429}
    assert info["time"] == "physical" and info["seq_len"] == {"train": 182, "eval": 91}
    assert len(info["source_sha256"]) == 64 and info["source_format"] == "arff"
    start = time.perf_counter()
    CharacterTrajectoriesDataModule(ct_dir, time="physical", eval_hz=0.5, download=False).setup()
    assert time.perf_counter() - start < 5.0  # ~0.1 s measured; loose for a noisy machine


def test_timestamp_scale_changes_only_the_clock(ct_dir):
    # hippo-code's train_ts / eval_ts: training (and validation loader 0) at one clock speed,
    # test (and validation loader 1) at another; the values are the same samples
    dm = CharacterTrajectoriesDataModule(ct_dir, time="physical", train_time_scale=0.5,
                                         eval_time_scale=1.0, download=False)  # fmt: skip
    dm.setup()
    train = next(iter(dm.train_dataloader()))
    val_train, val_eval = (next(iter(loader)) for loader in dm.val_dataloader())
    test = next(iter(dm.test_dataloader()))
    assert torch.allclose(train.times[0, :3], torch.tensor([0.0, 0.0025, 0.005]))
    assert torch.allclose(test.times[0, :3], torch.tensor([0.0, 0.005, 0.01]))
    assert torch.equal(val_train.values, val_eval.values)
    assert torch.allclose(val_train.times * 2, val_eval.times)
    assert dm.describe()["train_time_scale"] == 0.5
    with pytest.raises(ValueError, match="eval_time_scale must be a positive number"):
        CharacterTrajectoriesDataModule(ct_dir, eval_time_scale=0, download=False)
