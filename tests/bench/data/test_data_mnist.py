"""Sequential and permuted MNIST on the real shared IDX files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.data import MNISTDataModule
from bench.data.mnist import bit_reversal_permutation, permutation


@pytest.fixture(scope="module")
def smnist(mnist_dir):
    dm = MNISTDataModule(mnist_dir, batch_size=50, download=False)
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def pmnist(mnist_dir):
    dm = MNISTDataModule(mnist_dir, permute="bit_reversal", batch_size=50, download=False)
    dm.setup()
    return dm


def test_bit_reversal_matches_its_definition():
    # Definition: reverse the 10 bits of k = 0..1023 and keep the results below 784, in order.
    direct = [r for r in (int(f"{k:010b}"[::-1], 2) for k in range(1024)) if r < 784]
    assert bit_reversal_permutation(784).tolist() == direct
    assert sorted(direct) == list(range(784)) and direct[:4] == [0, 512, 256, 768]
    assert bit_reversal_permutation(8).tolist() == [0, 4, 2, 6, 1, 5, 3, 7]


def test_random_permutation_is_seeded():
    assert np.array_equal(permutation("random", 3), permutation("random", 3))
    assert not np.array_equal(permutation("random", 3), permutation("random", 4))
    assert sorted(permutation("random", 3).tolist()) == list(range(784))


def test_split_sizes_and_batches(smnist):
    assert smnist.describe()["split_sizes"] == {"train": 54000, "val": 6000, "test": 10000}
    rows = smnist.split_rows
    assert len(np.intersect1d(rows["train"].numpy(), rows["val"].numpy())) == 0
    batch = next(iter(smnist.train_dataloader()))
    assert batch.values.shape == (50, 784, 1) and batch.values.dtype == torch.float32
    assert batch.values.min() >= 0 and batch.values.max() <= 1 and batch.values.max() == 1
    assert (
        batch.times[0].tolist() == list(range(784))
        and batch.mask.all()
        and (batch.lengths == 784).all()
    )
    assert smnist.num_inputs == 1 and smnist.num_classes == 10 and smnist.seq_len() == 784


def test_test_split_in_file_order(smnist, mnist_dir):
    from torchvision.datasets import MNIST

    reference = MNIST(str(mnist_dir), train=False, download=False)
    labels = torch.cat([b.labels for b in smnist.test_dataloader()])
    assert torch.equal(labels, reference.targets) and labels[0] == 7
    first = next(iter(smnist.test_dataloader())).values[0, :, 0]
    torch.testing.assert_close(
        first, reference.data[0].flatten().float() / 255
    )  # row-major, /255 only


def test_permuted_is_the_sequential_reordered(smnist, pmnist):
    perm = torch.from_numpy(bit_reversal_permutation(784))
    a, b = next(iter(smnist.test_dataloader())), next(iter(pmnist.test_dataloader()))
    torch.testing.assert_close(b.values, a.values[:, perm])


def test_splits_are_deterministic(mnist_dir, smnist):
    again = MNISTDataModule(mnist_dir, batch_size=50, download=False)
    other = MNISTDataModule(mnist_dir, batch_size=50, split_seed=1, download=False)
    again.setup(), other.setup()
    assert torch.equal(again.split_rows["val"], smnist.split_rows["val"])
    assert not torch.equal(other.split_rows["val"], smnist.split_rows["val"])
    first = next(iter(again.train_dataloader())).labels
    assert torch.equal(first, next(iter(smnist.train_dataloader())).labels)
    with pytest.raises(ValueError, match="no rate change"):
        smnist.eval_dataloader("test", 0.5)
