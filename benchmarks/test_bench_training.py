"""One training step (forward + backward + Adam step) of every registered model (pytest-benchmark).

Fixed small size: hidden 32, batch 16, length 64, 3 channels, 20 classes, on a synthetic fully
observed :class:`~bench.batch.SequenceBatch` (time = step index). Extras a model asks for
(``batch_extras``, e.g. the Neural CDE's ``cde_coeffs``) are computed once outside the timed step,
as the data modules do. A model that cannot be imported or built yet is skipped.

Run: ``pytest benchmarks -m benchmark --benchmark-enable`` (``tox -e bench``); save with
``--benchmark-autosave`` and compare runs with ``--benchmark-compare``. The device is
``$BENCH_BENCHMARK_DEVICE`` (default ``cpu``; ``cuda`` on the GPU runner).
"""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from bench.batch import SequenceBatch
from bench.models import create_model, get_model_entry, list_models

pytestmark = pytest.mark.benchmark

HIDDEN, BATCH, LENGTH, CHANNELS, CLASSES = 32, 16, 64, 3, 20


def _device() -> torch.device:
    device = torch.device(os.environ.get("BENCH_BENCHMARK_DEVICE", "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        pytest.skip("BENCH_BENCHMARK_DEVICE asks for CUDA, which is not available")
    return device


def synthetic_batch(extras: dict | None = None) -> SequenceBatch:
    """A fixed random batch; ``extras`` (a model's ``batch_extras``) precomputed as a data module would."""
    gen = torch.Generator().manual_seed(0)
    values = torch.randn(BATCH, LENGTH, CHANNELS, generator=gen)
    times = torch.arange(LENGTH, dtype=torch.float32).expand(BATCH, LENGTH).clone()
    mask = torch.ones(BATCH, LENGTH, CHANNELS, dtype=torch.bool)
    batch = SequenceBatch(values=values, times=times, mask=mask,
                          lengths=torch.full((BATCH,), LENGTH, dtype=torch.int64),
                          labels=torch.randint(CLASSES, (BATCH,), generator=gen))  # fmt: skip
    for name, fn in (extras or {}).items():
        batch.extras[name] = fn(values, times, mask, batch.lengths)
    return batch


@pytest.mark.parametrize("name", list_models())
def test_training_step(benchmark, name):
    device = _device()
    try:
        model_cls = get_model_entry(name).load()
        torch.manual_seed(0)
        model = create_model(name, CHANNELS, CLASSES, hidden_size=HIDDEN).to(device)
    except (ImportError, AttributeError) as e:
        pytest.skip(f"{name} not importable yet: {type(e).__name__}: {e}")
    batch = synthetic_batch(getattr(model_cls, "batch_extras", {})).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    model.train()

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(batch), batch.labels)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return loss.item()

    assert torch.isfinite(torch.tensor(step()))  # warm-up (Adam state, lazy init, kernels)
    benchmark(step)
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(
        model=name, device=str(device), hidden_size=HIDDEN, batch_size=BATCH, length=LENGTH,
        num_parameters=sum(p.numel() for p in model.parameters()),
        samples_per_s=BATCH / median, steps_per_s=BATCH * LENGTH / median,
    )  # fmt: skip
