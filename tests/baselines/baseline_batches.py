"""Synthetic SequenceBatch objects for the baseline tests (imported by the test modules beside it)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from bench.batch import SequenceBatch

NUM_CLASSES = 5


def make_batch(
    lengths: Sequence[int],
    steps: int | None = None,
    channels: int = 3,
    missing: float = 0.0,
    time_scale: float = 1.0,
    seed: int = 0,
) -> SequenceBatch:
    """Random series: ``lengths[b]`` real steps each, padded with garbage to ``steps``.

    Times are ``arange * time_scale`` with jitter when ``missing`` > 0 (irregular gaps);
    ``missing`` is the fraction of (step, channel) points marked unobserved, whose values hold
    the forward-filled value as the SequenceBatch contract says.
    """
    g = torch.Generator().manual_seed(seed)
    b = len(lengths)
    steps = max(lengths) if steps is None else steps
    values = torch.randn(b, steps, channels, generator=g)
    gaps = torch.ones(b, steps)
    if missing:
        gaps = gaps + 0.5 * torch.rand(b, steps, generator=g)
    times = (gaps.cumsum(1) - gaps[:, :1]) * time_scale
    mask = torch.rand(b, steps, channels, generator=g) >= missing
    mask[:, 0] = True  # every channel starts observed, so forward fill is defined
    for t in range(1, steps):  # forward fill the unobserved points
        values[:, t] = torch.where(mask[:, t], values[:, t], values[:, t - 1])
    labels = torch.randint(0, NUM_CLASSES, (b,), generator=g)
    return SequenceBatch(values, times, mask, torch.tensor(list(lengths)), labels)


def pad_with_garbage(batch: SequenceBatch, steps: int, seed: int = 1) -> SequenceBatch:
    """``batch`` extended to ``steps`` steps with random values, mask and (increasing) times."""
    g = torch.Generator().manual_seed(seed)
    b, length, c = batch.values.shape
    extra = steps - length
    values = torch.cat([batch.values, 5 * torch.randn(b, extra, c, generator=g)], dim=1)
    more_times = batch.times[:, -1:] + torch.rand(b, extra, generator=g).cumsum(1) * 3
    times = torch.cat([batch.times, more_times], dim=1)
    mask = torch.cat([batch.mask, torch.rand(b, extra, c, generator=g) > 0.5], dim=1)
    return SequenceBatch(values, times, mask, batch.lengths, batch.labels)


def select(batch: SequenceBatch, index: int, steps: int) -> SequenceBatch:
    """Series ``index`` of ``batch`` alone, cut to its first ``steps`` steps."""
    return SequenceBatch(
        batch.values[index : index + 1, :steps],
        batch.times[index : index + 1, :steps],
        batch.mask[index : index + 1, :steps],
        batch.lengths[index : index + 1],
        batch.labels[index : index + 1],
    )
