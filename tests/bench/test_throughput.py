"""The throughput phase: warm-up, timed iterations, and the model passed in is left untouched."""

from __future__ import annotations

import pytest
import torch

from bench.throughput import measure_throughput


def test_measure_throughput_reports_rates_and_leaves_weights(fakes):
    model = fakes.FakeGRU(2, 3, hidden_size=8)
    batch = next(iter(fakes.FakeDataModule(batch_size=8).train_dataloader()))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = measure_throughput(model, batch, torch.device("cpu"), warmup=1, iters=3)
    for key in ("train_samples_per_s", "infer_samples_per_s", "train_steps_per_s", "infer_steps_per_s"):
        assert out[key] > 0
    assert out["train_steps_per_s"] == pytest.approx(out["train_samples_per_s"] * out["sequence_length"])
    assert out["batch_size"] == 8 and out["iters"] == 3
    assert out["peak_memory_bytes"] is None and out["peak_rss_bytes"] > 0  # CPU: no allocator counter
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_measure_throughput_rejects_no_iterations(fakes):
    batch = next(iter(fakes.FakeDataModule(batch_size=4).train_dataloader()))
    with pytest.raises(ValueError):
        measure_throughput(fakes.FakeGRU(2, 3), batch, torch.device("cpu"), iters=0)


def test_training_step_is_timed_with_the_models_own_optimiser(fakes):
    # the deep SSMs train with AdamW in two groups and a schedule: time that, not plain Adam
    asked = []

    class WithHook(fakes.FakeGRU):
        def configure_optimizers(self, *, lr, weight_decay, total_steps):
            asked.append((lr, weight_decay, total_steps))
            opt = torch.optim.SGD(self.parameters(), lr=lr, weight_decay=weight_decay)
            return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.ConstantLR(opt)}

    batch = next(iter(fakes.FakeDataModule(batch_size=4).train_dataloader()))
    out = measure_throughput(WithHook(2, 3, hidden_size=8), batch, torch.device("cpu"), warmup=0,
                             iters=2, lr=0.5, weight_decay=0.1)
    assert asked == [(0.5, 0.1, 2)] and out["train_samples_per_s"] > 0
