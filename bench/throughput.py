"""Throughput in a phase of its own: warm-up, device synchronisation, median of timed iterations.

Kept apart from training so that data loading, logging and validation never end up in the
numbers. One fixed batch is reused for every iteration. Reported per direction (``train`` =
forward + backward + optimizer step; ``infer`` = forward under ``torch.no_grad``):
seconds per iteration (median), samples/s and time-steps/s, where time-steps counts every
step a model processes (``batch_size * sequence_length``, padding included).

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` over the phase (reset at its start).
On CPU there is no allocator counter; we report ``peak_rss_bytes``, the process's peak resident
set size from ``resource.getrusage`` (a process-wide high-water mark: it includes the data and
everything earlier in the process, so read it as an upper bound), and ``peak_memory_bytes`` None.
"""

from __future__ import annotations

import copy
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from bench.data.batch import SequenceBatch


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels so wall-clock times measure the work, not the launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> int | None:
    """Peak allocated bytes since the last reset on CUDA; None on CPU (see module docstring)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return None


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def _median_seconds(step: Callable[[], Any], device: torch.device, warmup: int, iters: int) -> float:
    for _ in range(warmup):
        step()
    synchronize(device)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_throughput(
    model: nn.Module,
    batch: SequenceBatch,
    device: torch.device,
    *,
    warmup: int = 2,
    iters: int = 5,
    lr: float = 1e-3,
) -> dict[str, Any]:
    """Median training-step and inference times of ``model`` on ``batch``, and peak memory.

    The training step runs on a deep copy with its own Adam optimizer, so measuring never
    changes the weights of the model passed in.
    """
    if iters < 1 or warmup < 0:
        raise ValueError(f"need iters >= 1 and warmup >= 0, got iters={iters}, warmup={warmup}")
    model = copy.deepcopy(model).to(device)
    batch = batch.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(batch), batch.labels).backward()
        optimizer.step()

    @torch.no_grad()
    def infer_step() -> None:
        model(batch)

    synchronize(device)
    reset_peak_memory(device)
    model.train()
    train_s = _median_seconds(train_step, device, warmup, iters)
    model.eval()
    infer_s = _median_seconds(infer_step, device, warmup, iters)

    samples = len(batch)
    steps = samples * batch.values.shape[1]
    return {
        "batch_size": samples,
        "sequence_length": int(batch.values.shape[1]),
        "warmup": warmup,
        "iters": iters,
        "device": str(device),
        "train_seconds_per_iter": train_s,
        "train_samples_per_s": samples / train_s,
        "train_steps_per_s": steps / train_s,
        "infer_seconds_per_iter": infer_s,
        "infer_samples_per_s": samples / infer_s,
        "infer_steps_per_s": steps / infer_s,
        "peak_memory_bytes": peak_memory(device),
        "peak_rss_bytes": peak_rss_bytes(),
    }
