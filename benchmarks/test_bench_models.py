"""Training-step speed, HiPPO-LegS against LSTM at the reference CharacterTrajectories size.

One step = forward + backward + Adam, hidden 256, batch 100, length 182, 3 channels, on
random data (speed does not depend on the values). Run:

    pytest benchmarks/test_bench_models.py -m benchmark --benchmark-enable

Both models land in one pytest-benchmark group so the table shows them side by side.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bench.data import SequenceBatch
from bench.models import create_model

B, L, C, H, K = 100, 182, 3, 256, 20

pytestmark = pytest.mark.benchmark


def make_batch() -> SequenceBatch:
    g = torch.Generator().manual_seed(0)
    return SequenceBatch(
        values=torch.randn(B, L, C, generator=g),
        times=torch.arange(L, dtype=torch.float32).expand(B, L).contiguous(),
        mask=torch.ones(B, L, C, dtype=torch.bool),
        lengths=torch.full((B,), L),
        labels=torch.randint(0, K, (B,), generator=g),
    )


# HiPPO-LegS and LSTM at the reference hidden 256; S4D at its reference size (4 layers, d_model 128)
@pytest.mark.parametrize(("name", "hidden"), [("hippo-legs", H), ("lstm", H), ("s4d", 128)])
def test_train_step_reference_size(benchmark, name: str, hidden: int) -> None:
    benchmark.group = f"train step at the reference sizes: batch {B}, length {L}"
    torch.manual_seed(0)
    model = create_model(name, C, K, hidden_size=hidden)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = make_batch()

    def step() -> float:
        loss = F.cross_entropy(model(batch), batch.labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    loss = benchmark.pedantic(step, rounds=10, iterations=1, warmup_rounds=2)
    assert loss == loss  # finite (not NaN)
