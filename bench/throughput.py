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

from bench.batch import SequenceBatch
from bench.models.base import model_optimizer, training_loss


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
    weight_decay: float = 0.0,
) -> dict[str, Any]:
    """Median training-step and inference times of ``model`` on ``batch``, and peak memory.

    The training step runs on a deep copy with a fresh copy of the optimiser the model trains
    with (:func:`bench.models.base.model_optimizer`; a schedule, if any, stays at its start), so
    measuring never changes the weights of the model passed in.
    """
    if iters < 1 or warmup < 0:
        raise ValueError(f"need iters >= 1 and warmup >= 0, got iters={iters}, warmup={warmup}")
    model = copy.deepcopy(model).to(device)
    batch = batch.to(device)
    optimizer = model_optimizer(model, lr=lr, weight_decay=weight_decay, total_steps=iters)
    if isinstance(optimizer, dict):  # Lightning's {"optimizer", "lr_scheduler"}
        optimizer = optimizer["optimizer"]

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        training_loss(model, batch)[0].backward()
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


def _state_bytes(state: Any) -> int:
    """Bytes of every tensor in a (nested tuple/list/dict/NamedTuple) streaming state."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(_state_bytes(v) for v in state.values())
    if isinstance(state, tuple | list):
        return sum(_state_bytes(v) for v in state)
    return 0


def has_step_mode(model: nn.Module) -> bool:
    """Whether ``model`` has the streaming interface: ``init_state`` and ``step``."""
    return callable(getattr(model, "step", None)) and callable(getattr(model, "init_state", None))


def measure_streaming(
    model: nn.Module,
    batch: SequenceBatch,
    device: torch.device,
    *,
    warmup: int = 1,
    iters: int = 3,
) -> dict[str, Any]:
    """Streaming inference: the whole batch fed one step at a time through ``model.step``.

    The model must define ``init_state(batch_size, device, dtype)`` and ``step(values_t,
    times_t, state) -> (logits, state)`` (TypeError otherwise). One iteration = a fresh state
    and every step of ``batch`` (padding included, as ``measure_throughput``), in eval mode
    under ``torch.no_grad`` on a deep copy; median seconds with device synchronisation on CUDA
    (none needed on CPU). Reports samples/s and steps/s (``batch_size * L`` steps per
    iteration), the median latency of one step for the whole batch, and the state's bytes after
    the first and the last step (equal for a fixed-size recurrent state: constant in L;
    Python scalars in a state count 0).
    """
    if iters < 1 or warmup < 0:
        raise ValueError(f"need iters >= 1 and warmup >= 0, got iters={iters}, warmup={warmup}")
    if not has_step_mode(model):
        raise TypeError(f"{type(model).__name__} has no streaming step mode "
                        "(init_state/step)")
    model = copy.deepcopy(model).to(device).eval()
    batch = batch.to(device)
    B, L = batch.values.shape[:2]
    dtype = batch.values.dtype
    sizes: dict[str, int] = {}

    @torch.no_grad()
    def run() -> None:
        state = model.init_state(B, device, dtype)
        for k in range(L):
            _, state = model.step(batch.values[:, k], batch.times[:, k], state)
            if k == 0:
                sizes["first"] = _state_bytes(state)
        sizes["last"] = _state_bytes(state)

    synchronize(device)
    seconds = _median_seconds(run, device, warmup, iters)
    return {
        "batch_size": B,
        "sequence_length": L,
        "warmup": warmup,
        "iters": iters,
        "device": str(device),
        "stream_seconds_per_iter": seconds,
        "stream_samples_per_s": B / seconds,
        "stream_steps_per_s": B * L / seconds,
        "stream_step_latency_s": seconds / max(L, 1),
        "state_bytes": sizes.get("last", 0),
        "state_bytes_first_step": sizes.get("first", 0),
        "state_bytes_per_series": sizes.get("last", 0) / max(B, 1),
    }
