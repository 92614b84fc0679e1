"""UEADataModule on a small archive written here; argument checks; download and extraction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from archives import make_zip
from toy_uea import write_toy_dataset

from baselines.cde_path import cde_coefficients
from bench.data import (
    CharacterTrajectoriesDataModule,
    DataNotFoundError,
    MNISTDataModule,
    SequenceBatch,
    UEADataModule,
    get_dataset_entry,
    list_datasets,
    make_datamodule,
)
from bench.data import download as dl
from bench.data.uea import forward_fill, pad_last_observed


@pytest.fixture
def toy_dir(tmp_path: Path) -> Path:
    return write_toy_dataset(tmp_path, with_arff=True)


def test_generic_uea_module(toy_dir):
    dm = UEADataModule(
        "Toy",
        toy_dir,
        train_hz=1.0,
        eval_hz=0.5,
        batch_size=8,
        extras={"cde_coeffs": cde_coefficients},
        download=False,
    )
    dm.setup()
    info = dm.describe()
    assert info["source_format"] == "ts" and info["split_sizes"] == {
        "train": 56,
        "val": 12,
        "test": 12,
    }
    assert (
        dm.num_inputs == 2
        and dm.num_classes == 2
        and dm.seq_len(1.0) == 11
        and dm.seq_len(0.5) == 5
    )
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch, SequenceBatch)
    assert batch.values.shape == (8, 11, 2) and batch.values.dtype == torch.float32
    assert not torch.isnan(batch.values).any()
    seen = batch.mask.any(-1)  # series of 5 to 11 steps: observed, then the padded tail
    assert seen[:, :5].all() and (seen[:, 1:] <= seen[:, :-1]).all() and not seen.all()
    assert (batch.mask.all(-1) == seen).all()  # the shorter channel is filled up to the series' end
    assert batch.extras["cde_coeffs"].shape == (8, 10, 12)
    assert (batch.values != 9).all()  # standardised .ts values, not the arff's 9s
    loaders = dm.val_dataloader()
    assert [next(iter(ld)).values.shape[1] for ld in loaders] == [11, 5]
    assert dm.val_dataloader_names == ["val_train_rate", "val_eval_rate"]


def test_padding_repeats_last_value_and_forward_fill():
    raw = np.array([[[1.0, np.nan, 3.0, np.nan], [5.0, 6.0, np.nan, np.nan], [np.nan] * 4]])
    values, observed = pad_last_observed(raw)
    np.testing.assert_array_equal(values[0, 0], [1, np.nan, 3, 3])  # inside gap stays missing
    np.testing.assert_array_equal(values[0, 1], [5, 6, 6, 6])
    # the tail after the series' last observation (index 2) is padding: filled, not observed;
    # channel 1, which ends earlier, counts as observed up to there
    assert observed[0, 0].tolist() == [True, False, True, False] and not observed[0, 2].any()
    assert observed[0, 1].tolist() == [True, True, True, False]
    filled = forward_fill(torch.from_numpy(values).transpose(1, 2))
    assert filled[0, :, 0].tolist() == [1, 1, 3, 3] and filled[0, :, 2].tolist() == [0, 0, 0, 0]


def test_missing_files_say_what_to_download(tmp_path):
    # An existing but empty data dir (a data dir that does not exist: test_data_download.py).
    (tmp_path / "nowhere").mkdir()
    dm = CharacterTrajectoriesDataModule(tmp_path / "nowhere", download=False)
    with pytest.raises(
        DataNotFoundError,
        match=r"aeon-toolkit/CharacterTrajectories\.zip.*nowhere/CharacterTrajectories",
    ):
        dm.setup()
    with pytest.raises(DataNotFoundError, match=r"MNIST/raw"):
        MNISTDataModule(tmp_path, download=False).setup()


def test_data_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))
    assert CharacterTrajectoriesDataModule().data_dir == tmp_path
    assert MNISTDataModule(data_dir=tmp_path / "x").data_dir == tmp_path / "x"


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"train_hz": 0.0}, "train_hz"),
        ({"train_hz": 1.5}, "train_hz"),
        ({"eval_hz": -0.5}, "eval_hz"),
        ({"eval_hz": "1"}, "eval_hz"),
        ({"time": "seconds"}, "time"),
        ({"missing_rate": 1.0}, "missing_rate"),
        ({"missing_rate": -0.1}, "missing_rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"extras": ("splines",)}, "extras"),
    ],
)
def test_invalid_arguments_rejected_at_construction(kwargs, words):
    with pytest.raises(ValueError, match=words):
        CharacterTrajectoriesDataModule(**kwargs)


def test_invalid_mnist_and_uea_arguments():
    with pytest.raises(ValueError, match="permute"):
        MNISTDataModule(permute="reverse")
    with pytest.raises(ValueError, match="sample_rate_hz"):
        UEADataModule("Toy", time="physical")
    with pytest.raises(ValueError, match="unknown dataset"):
        make_datamodule("cifar")


def test_registry_names():
    assert {"character-trajectories", "smnist", "pmnist"} <= set(list_datasets())
    assert get_dataset_entry("uea:CharacterTrajectories").sample_rate_hz == 200.0
    assert get_dataset_entry("uea:Toy").sample_rate_hz is None
    assert get_dataset_entry("uea:Toy", sample_rate_hz=50.0).sample_rate_hz == 50.0
    assert make_datamodule("pmnist").permute == "bit_reversal"
    assert make_datamodule("smnist").permute is None
    assert make_datamodule("uea:BasicMotions").name == "BasicMotions"


@pytest.mark.parametrize("member", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt"])
def test_safe_extract_rejects_escaping_members(tmp_path, member):
    archive = tmp_path / "bad.zip"
    archive.write_bytes(make_zip({"ok.txt": b"1", member: b"2"}))
    with pytest.raises(ValueError, match="refusing to extract"):
        dl.safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "ok.txt").exists()


def test_download_from_url_verifies_and_extracts(tmp_path, toy_dir, monkeypatch):
    members = {
        f"Toy_{s}.ts": (toy_dir / "Toy" / f"Toy_{s}.ts").read_bytes() for s in ("TRAIN", "TEST")
    }
    archive = tmp_path / "Toy.zip"
    archive.write_bytes(make_zip(members))
    url = archive.as_uri()
    root = tmp_path / "data"
    target = dl.download_uea("Toy", root, url=url)
    assert sorted(p.name for p in target.iterdir()) == [
        "Toy.zip.sha256",
        "Toy_TEST.ts",
        "Toy_TRAIN.ts",
    ]
    assert UEADataModule("Toy", root, download=False).num_classes == 2
    monkeypatch.setitem(dl.ARCHIVE_SHA256, "Toy", "0" * 64)
    with pytest.raises(dl.ChecksumError, match="expected 0000"):
        dl.download_uea("Toy", tmp_path / "other", url=url)
    assert not list((tmp_path / "other" / "Toy").glob("*.part"))
    with pytest.raises(DataNotFoundError, match="could not download"):
        dl.download_uea("Toy", tmp_path / "third", url=(tmp_path / "absent.zip").as_uri())


def test_interpolate_missing_matches_torchcde():
    torchcde = pytest.importorskip("torchcde")
    from baselines.cde_path import interpolate_missing

    x = torch.randn(6, 12, 3, generator=torch.Generator().manual_seed(0))
    x[torch.rand(6, 12, 3, generator=torch.Generator().manual_seed(1)) < 0.5] = float("nan")
    x[0, :, 1], x[1, :4], x[2, -3:] = float("nan"), float("nan"), float("nan")
    torch.testing.assert_close(interpolate_missing(x), torchcde.linear_interpolation_coeffs(x))
