"""Sequential and permuted MNIST: 784 steps x 1 channel, pixels in [0, 1], 10 classes.

Each image is flattened row-major (``pixel[r, c]`` at step ``28 * r + c``), scaled by 1/255 and
nothing else, then permuted: step ``k`` holds pixel ``perm[k]``. ``permute="bit_reversal"`` is
the reference permutation (:func:`bit_reversal_permutation`); ``"random"`` a seeded one.
Splits: a seeded 54000 / 6000 train / validation split of the 60000 training images
(``torch.randperm`` with ``split_seed``) and the 10000 test images, evaluated in order.
Images are kept as uint8 and scaled per item (47 MB in memory instead of 188 MB).
"""

from __future__ import annotations

import http.client
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from bench.data.base import (
    Extras,
    SequenceDataModule,
    check_choice,
    check_extras,
    check_rate,
    check_split,
)
from bench.data.download import remove_stale_staging
from bench.data.paths import DataNotFoundError, check_data_dir, data_dir_origin, resolve_data_dir

PERMUTATIONS = (None, "bit_reversal", "random")
SEQ_LEN, NUM_TRAIN = 784, 60000
RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def bit_reversal_permutation(n: int) -> np.ndarray:
    """Bit-reversal order of ``range(n)`` as in the reference code.

    With ``m = ceil(log2 n)``: list ``reverse_m_bits(k)`` for ``k = 0 .. 2**m - 1`` and keep the
    entries below ``n`` in that order. For ``n = 784``: ``m = 10``, 1024 candidates, 784 kept.
    """
    bits = max(n - 1, 0).bit_length()
    k = np.arange(1 << bits)
    reversed_k = np.zeros_like(k)
    for b in range(bits):
        reversed_k |= ((k >> b) & 1) << (bits - 1 - b)
    return reversed_k[reversed_k < n]


def permutation(permute: str | None, seed: int = 0, n: int = SEQ_LEN) -> np.ndarray:
    """The step order for ``permute`` (None: identity; "random": ``randperm`` seeded ``seed``)."""
    if permute is None:
        return np.arange(n)
    if permute == "bit_reversal":
        return bit_reversal_permutation(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()


class PixelSequences(Dataset):
    """``images`` ``(N, 784)`` uint8 already permuted; item = dict for ``collate_sequences``."""

    def __init__(self, images: Tensor, labels: Tensor):
        self.images, self.labels = images, labels
        n_steps = images.shape[1]
        # Shared by every item: every pixel is observed and every series is full length.
        self.times = torch.arange(n_steps, dtype=torch.float32)
        self.mask = torch.ones(n_steps, 1, dtype=torch.bool)
        self.length = torch.tensor(n_steps)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {
            "values": self.images[i].unsqueeze(-1).float().div_(255.0),
            "times": self.times,
            "mask": self.mask,
            "lengths": self.length,
            "labels": self.labels[i],
        }


class MNISTDataModule(SequenceDataModule):
    """Sequential / permuted MNIST loaders (``num_inputs`` 1, ``num_classes`` 10, 784 steps).

    Args:
        data_dir: folder holding ``MNIST/raw/`` (torchvision layout); default ``$BENCH_DATA_DIR``,
            else the per-user cache. A named folder must exist; only the default is created.
        permute: None, ``"bit_reversal"`` (permuted MNIST as in the reference) or ``"random"``.
        batch_size / eval_batch_size: training / evaluation batch sizes.
        seed: seed of the training shuffle.
        split_seed: seed of the 54000 / 6000 train / validation split (fixed across runs).
        permute_seed: seed of the ``"random"`` permutation.
        val_size: images held out of the 60000 for validation.
        download: whether ``prepare_data`` may download absent files (torchvision).
        extras: accepted for a uniform interface but not precomputed: spline coefficients of
            54000 x 784 steps would take 1.3 GB, so models compute them per batch (allowed by the
            ``SequenceBatch.extras`` contract).

    Rate factors do not apply: ``eval_dataloader(split, hz)`` accepts only ``hz = 1``.
    """

    num_inputs = 1
    num_classes = 10

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        permute: str | None = None,
        batch_size: int = 64,
        seed: int = 0,
        *,
        eval_batch_size: int | None = None,
        split_seed: int = 0,
        permute_seed: int = 0,
        val_size: int = 6000,
        download: bool = True,
        extras: Extras | None = None,
        num_workers: int = 0,
    ):
        super().__init__(batch_size, eval_batch_size, seed, num_workers)
        self.data_dir = resolve_data_dir(data_dir)
        self.data_dir_origin = data_dir_origin(data_dir)
        self.permute = check_choice("permute", permute, PERMUTATIONS)
        if (
            isinstance(val_size, bool)
            or not isinstance(val_size, int)
            or not 0 < val_size < NUM_TRAIN
        ):
            raise ValueError(f"val_size must be an integer in (0, {NUM_TRAIN}), got {val_size!r}")
        self.split_seed, self.permute_seed, self.val_size = (
            int(split_seed),
            int(permute_seed),
            val_size,
        )
        self.download = download
        check_extras(extras)
        self.permutation = torch.from_numpy(permutation(permute, self.permute_seed))
        self._datasets: dict[str, PixelSequences] = {}

    def _missing_message(self) -> str:
        return (
            f"MNIST not found under {self.data_dir}: put the uncompressed IDX files "
            f"{', '.join(RAW_FILES)} (from http://yann.lecun.com/exdb/mnist/, gunzipped) into "
            f"{self.data_dir / 'MNIST' / 'raw'}/, or point --data-dir / data_dir= / $BENCH_DATA_DIR at a folder "
            f"that has MNIST/raw/, or allow download=True with network access"
        )

    def _torchvision(self, train: bool, download: bool = False):
        from torchvision.datasets import MNIST

        try:
            return MNIST(root=str(self.data_dir), train=train, download=download)
        except RuntimeError as exc:  # torchvision's "Dataset not found"
            check_data_dir(self.data_dir, self.data_dir_origin)  # a typo: say so, not "not found"
            raise DataNotFoundError(f"{self._missing_message()} ({exc})") from exc

    def prepare_data(self) -> None:
        """Download with torchvision when the raw files are absent and ``download`` is on.

        A named data directory must exist (a typo is refused, not created); the per-user default
        is created here. torchvision fetches and md5-checks the archives into a staging folder
        ``<data dir>/.MNIST-download-*`` (removed whatever happens); only the four unpacked
        files are then moved into ``MNIST/raw/``, so a failed download keeps nothing.
        """
        from torchvision.datasets import MNIST

        raw = self.data_dir / "MNIST" / "raw"
        if all((raw / name).is_file() for name in RAW_FILES):
            return
        check_data_dir(self.data_dir, self.data_dir_origin, create=self.download)
        if not self.download:
            raise DataNotFoundError(self._missing_message())
        remove_stale_staging(self.data_dir, ".MNIST-download-")
        try:
            with tempfile.TemporaryDirectory(dir=self.data_dir, prefix=".MNIST-download-") as tmp:
                MNIST(root=tmp, train=True, download=True)  # fetches all four files
                raw.mkdir(parents=True, exist_ok=True)
                for name in RAW_FILES:
                    os.replace(Path(tmp) / "MNIST" / "raw" / name, raw / name)
        except (OSError, RuntimeError, ValueError, http.client.HTTPException) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise DataNotFoundError(
                f"could not download MNIST ({reason}); nothing of it was kept in {raw}/. "
                f"{self._missing_message()}"
            ) from exc

    def setup(self, stage: str | None = None) -> None:
        """Read the 70000 images once (uint8), permute their pixels, split train / validation."""
        if self._datasets:
            return
        if self.download:
            self.prepare_data()
        train, test = self._torchvision(True), self._torchvision(False)
        order = self.permutation
        images = train.data.reshape(len(train.data), -1)[:, order]
        shuffled = torch.randperm(
            len(images), generator=torch.Generator().manual_seed(self.split_seed)
        )
        val_rows = shuffled[: self.val_size].sort().values
        train_rows = shuffled[self.val_size :].sort().values
        #: rows of the 60000 training images in each split (for checks and run records).
        self.split_rows = {"train": train_rows, "val": val_rows}
        self._datasets = {
            "train": PixelSequences(images[train_rows], train.targets[train_rows]),
            "val": PixelSequences(images[val_rows], train.targets[val_rows]),
            "test": PixelSequences(test.data.reshape(len(test.data), -1)[:, order], test.targets),
        }

    def _dataset(self, split: str, hz: float) -> PixelSequences:
        if check_rate("hz", hz) != 1.0:
            raise ValueError(f"MNIST has no rate change: hz must be 1.0, got {hz!r}")
        if not self._datasets:
            self.setup()
        return self._datasets[check_split(split)]

    def val_dataloader(self):
        """One loader: the 6000 held-out training images, in order."""
        return self._loader(self._dataset("val", 1.0), shuffle=False)

    def seq_len(self, hz: float | None = None) -> int:
        return SEQ_LEN

    def describe(self) -> dict[str, Any]:
        """The protocol settings, for run records."""
        if not self._datasets:
            self.setup()
        return {
            "dataset": "pmnist" if self.permute else "smnist",
            "permute": self.permute,
            "permute_seed": self.permute_seed if self.permute == "random" else None,
            "split_seed": self.split_seed,
            "shuffle_seed": self.seed,
            "split_sizes": {k: len(v) for k, v in self._datasets.items()},
            "seq_len": SEQ_LEN,
            "num_inputs": 1,
            "num_classes": 10,
            "scaling": "pixel / 255",
            "time": "index",
        }
