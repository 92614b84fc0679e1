"""One torch thread per run (the CPU default of the executors) against torch's own default thread
count, on a quiet CPU and beside a CPU burner (pytest-benchmark, marker ``benchmark``).

The work: ``STEPS`` training steps (forward, backward, Adam) of ``hippo-legs`` at the quick
size of the timescale suite (hidden 64, batch 100, CharacterTrajectories at 50 Hz: 91 steps,
3 channels, 20 classes) on a synthetic batch. Each round times it four times, alternated
call by call in one process: with 1 thread and with torch's default (what ``import torch``
picks without ``OMP_NUM_THREADS``: one per core), first alone, then with ``BURNERS``
processes (default 1, ``$BENCH_BURNERS``) spinning on Python arithmetic beside it. The order
within each pair flips every round. It prints the medians and the ratios; ``extra_info``
keeps them.

Run: ``pytest benchmarks/test_bench_threads.py -m benchmark -s``. "Quiet" means no burner of
this benchmark: other work on the machine counts as load too (say what ran beside it).
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import subprocess
import sys
import time

import pytest
import torch
import torch.nn.functional as F

from bench.batch import SequenceBatch
from bench.environment import torch_threads
from bench.models import create_model

pytestmark = pytest.mark.benchmark

HIDDEN, BATCH, LENGTH, CHANNELS, CLASSES = 64, 100, 91, 3, 20
STEPS = 3
ROUNDS = int(os.environ.get("BENCH_THREADS_ROUNDS", "5"))
BURNERS = int(os.environ.get("BENCH_BURNERS", "1"))


def torch_default_threads() -> int:
    """The thread count a fresh ``import torch`` picks (no OMP_NUM_THREADS/MKL_NUM_THREADS)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                         env=env, capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    return int(out.stdout.strip())


def _burn() -> None:
    """Spin on arithmetic until terminated (a CPU that other work keeps busy)."""
    x = 1.0
    while True:
        x = x * 1.0000001 + 1e-9
        if x > 1e6:
            x = 1.0


class Burners:
    """``n`` burner processes while the block runs (fork: they never touch torch)."""

    def __init__(self, n: int):
        self.n, self.procs = n, []

    def __enter__(self) -> Burners:
        ctx = multiprocessing.get_context("fork")
        self.procs = [ctx.Process(target=_burn, daemon=True) for _ in range(self.n)]
        for p in self.procs:
            p.start()
        time.sleep(0.3)  # let them reach the scheduler
        return self

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.join(timeout=10)


def _training_steps():
    g = torch.Generator().manual_seed(0)
    batch = SequenceBatch(values=torch.randn(BATCH, LENGTH, CHANNELS, generator=g),
                          times=torch.arange(LENGTH, dtype=torch.float32).expand(BATCH, LENGTH).clone(),
                          mask=torch.ones(BATCH, LENGTH, CHANNELS, dtype=torch.bool),
                          lengths=torch.full((BATCH,), LENGTH, dtype=torch.int64),
                          labels=torch.randint(CLASSES, (BATCH,), generator=g))  # fmt: skip
    torch.manual_seed(0)
    model = create_model("hippo-legs", CHANNELS, CLASSES, hidden_size=HIDDEN)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses: list[float] = []

    def run() -> None:
        for _ in range(STEPS):
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(batch), batch.labels)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())

    return run, losses


def test_one_thread_against_torch_default_quiet_and_loaded(benchmark):
    default = torch_default_threads()
    if default == 1:
        pytest.skip("torch's default is already one thread on this machine")
    run, losses = _training_steps()
    counts = (1, default)
    times: dict[tuple[str, int], list[float]] = {(load, n): [] for load in ("quiet", "loaded") for n in counts}

    def timed(load: str, n: int) -> None:
        with torch_threads(n):
            start = time.perf_counter()
            run()
            times[load, n].append(time.perf_counter() - start)

    def one_round() -> None:
        order = counts if len(times["quiet", 1]) % 2 == 0 else counts[::-1]
        for n in order:
            timed("quiet", n)
        with Burners(BURNERS):
            for n in order:
                timed("loaded", n)

    benchmark.group = f"hippo-legs quick training step x{STEPS}: 1 thread vs torch's default {default}"
    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert all(map(torch.isfinite, torch.tensor(losses)))
    med = {k: statistics.median(v[1:]) for k, v in times.items()}  # [0]: the warm-up round
    info = {f"{load}_{n}thread_median_s": t for (load, n), t in med.items()}
    info.update({
        "quiet_default_over_1thread": med["quiet", default] / med["quiet", 1],
        "loaded_default_over_1thread": med["loaded", default] / med["loaded", 1],
        "1thread_loaded_over_quiet": med["loaded", 1] / med["quiet", 1],
        "default_loaded_over_quiet": med["loaded", default] / med["quiet", default],
        "burners": BURNERS, "cpu_count": os.cpu_count(), "rounds": ROUNDS,
    })  # fmt: skip
    benchmark.extra_info.update(info)
    print(f"\n{benchmark.group}, {BURNERS} burner(s) when loaded, {ROUNDS} rounds (medians): "
          + ", ".join(f"{k} {v:.3g}" for k, v in info.items()))
