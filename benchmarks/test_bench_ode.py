"""Training-step speed of the continuous-time baselines: the fast fixed-step solves against the
paths they replaced, side by side on the same model and batch.

Reference sizes (the Neural CDE experiments' CharacterTrajectories setting): batch 32, 182 steps,
3 channels, 20 classes, hidden 32, vector field 32 wide x 3 hidden layers (GRU-ODE: hidden 47),
rk4 one step per sample (NCDE, GRU-ODE) or per gap (ODE-RNN). One step = forward + backward +
Adam, on random fully observed data (speed does not depend on the values); the spline
coefficients are computed once outside the timed step, as the data modules do.

- ``ncde``: ``backend="fast"`` (baselines.fixed_step) against ``backend="torchcde"``
  (torchcde.cdeint -> torchdiffeq).
- ``ode-rnn``: the model's forward (hand-written reverse pass) against the implementation it
  replaced, kept below as :func:`autograd_ode_rnn_logits`: the same arithmetic step by step
  through autograd.
- ``gru-ode``: ``backend="fast"`` against ``backend="autograd"`` (the rk4 loop through
  autograd), at the model's reference size: hidden 47, path ``[time, 3 values]``.

The ``interleaved`` tests alternate the two paths call by call, so drift in a shared machine's
speed hits both; their ``extra_info`` (and ``-s`` output) holds each one's median and the ratio.
Run::

    PYTHONPATH=. python -m pytest benchmarks/test_bench_ode.py -m benchmark -s

(``-k gru-ode`` and the like pick one model.)

With the default two threads on a busy 2-core machine the replaced paths can be many times
slower still: MKL's tanh forks threads even for 32 x 32 inputs and each fork waits for a core
(the fast paths run their loops on one thread). ``OMP_NUM_THREADS=1`` in front of the command
compares the two without that effect.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from baselines.cde_path import cde_coefficients
from baselines.common import gru_step
from baselines.gru_ode import GRUODE
from baselines.ncde import NeuralCDE
from baselines.ode_rnn import ODERNN
from bench.data import SequenceBatch
from bench.models.base import last_valid

pytestmark = pytest.mark.benchmark

B, L, C, K = 32, 182, 3, 20


def make_batch() -> SequenceBatch:
    g = torch.Generator().manual_seed(0)
    values = torch.randn(B, L, C, generator=g)
    times = torch.arange(L, dtype=torch.float32).expand(B, L).contiguous()
    mask = torch.ones(B, L, C, dtype=torch.bool)
    batch = SequenceBatch(values, times, mask, torch.full((B,), L),
                          torch.randint(0, K, (B,), generator=g))  # fmt: skip
    batch.extras["cde_coeffs"] = cde_coefficients(values, times, mask)
    return batch


def autograd_fixed_step(f, y, dt, method):
    """One step of ``dy/dt = f(y)`` over ``dt`` ``(B, 1)``, op by op (the replaced code)."""
    if method == "euler":
        return y + dt * f(y)
    if method == "midpoint":
        return y + dt * f(y + 0.5 * dt * f(y))
    k1 = f(y)
    k2 = f(y + dt * k1 / 3)
    k3 = f(y + dt * (k2 - k1 / 3))
    k4 = f(y + dt * (k1 - k2 + k3))
    return y + (k1 + 3 * (k2 + k3) + k4) * dt * 0.125


def autograd_ode_rnn_logits(model: ODERNN, batch: SequenceBatch) -> torch.Tensor:
    """ODERNN's forward as it was before the hand-written reverse pass: autograd records every op."""
    values = batch.values
    inputs = torch.cat([values, batch.mask.to(values.dtype)], dim=-1)
    gi = F.linear(inputs, model.cell.weight_ih, model.cell.bias_ih).unbind(1)
    observed = batch.mask.any(dim=-1, keepdim=True).unbind(1)
    gaps = batch.times.to(values.dtype).diff(dim=1).unsqueeze(-1).unbind(1)
    h = values.new_zeros(values.shape[0], model.hidden_size)
    h = torch.where(observed[0], gru_step(gi[0], h, model.cell), h)
    outputs = [h]
    for k, dt in enumerate(gaps, start=1):
        h = autograd_fixed_step(model.func, h, dt, model.solver)
        h = torch.where(observed[k], gru_step(gi[k], h, model.cell), h)
        outputs.append(h)
    return model.classifier(last_valid(torch.stack(outputs, dim=1), batch.lengths))


def train_step(model: torch.nn.Module, batch: SequenceBatch, forward=None) -> Callable[[], float]:
    """A closure running one training step (forward, backward, Adam) of ``model``."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    forward = forward or model

    def step() -> float:
        loss = F.cross_entropy(forward(batch), batch.labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return step


def ncde_step(backend: str, batch: SequenceBatch) -> Callable[[], float]:
    torch.manual_seed(0)  # the same initial weights for both backends
    return train_step(NeuralCDE(C, K, backend=backend), batch)


def ode_rnn_step(path: str, batch: SequenceBatch) -> Callable[[], float]:
    torch.manual_seed(0)
    model = ODERNN(C, K)
    if path == "fast":
        return train_step(model, batch)
    return train_step(model, batch, lambda b: autograd_ode_rnn_logits(model, b))


def gru_ode_step(backend: str, batch: SequenceBatch) -> Callable[[], float]:
    torch.manual_seed(0)
    return train_step(GRUODE(C, K, backend=backend), batch)


PATHS = {
    "ncde": (ncde_step, ("fast", "torchcde")),
    "ode-rnn": (ode_rnn_step, ("fast", "autograd")),
    "gru-ode": (gru_ode_step, ("fast", "autograd")),
}
SIZES = {"ncde": "hidden 32, 32 x 3", "ode-rnn": "hidden 32, 32 x 3", "gru-ode": "hidden 47"}


@pytest.mark.parametrize(("model", "path"), [(m, p) for m, (_, ps) in PATHS.items() for p in ps])
def test_train_step(benchmark, model: str, path: str) -> None:
    benchmark.group = f"{model} train step: batch {B}, {L} steps, {SIZES[model]}"
    step = PATHS[model][0](path, make_batch())
    loss = benchmark.pedantic(step, rounds=10, iterations=1, warmup_rounds=2)
    assert loss == loss  # finite (not NaN)


@pytest.mark.parametrize("model", list(PATHS))
def test_train_step_interleaved(benchmark, model: str) -> None:
    """The fast path and the replaced one alternated call by call; extra_info: medians, ratio."""
    make, (new, old) = PATHS[model]
    batch = make_batch()
    steps = {new: make(new, batch), old: make(old, batch)}
    times: dict[str, list[float]] = {new: [], old: []}

    def run() -> None:
        for path, step in steps.items():
            start = time.perf_counter()
            step()
            times[path].append(time.perf_counter() - start)

    benchmark.group = f"{model} interleaved"
    benchmark.pedantic(run, rounds=10, iterations=1, warmup_rounds=1)
    medians = {path: statistics.median(ts[1:]) for path, ts in times.items()}  # [0]: warm-up
    best = {path: min(ts[1:]) for path, ts in times.items()}
    info = {f"{p}_median_ms": 1e3 * t for p, t in medians.items()}
    info |= {"speedup_median": medians[old] / medians[new], "speedup_min": best[old] / best[new]}
    benchmark.extra_info.update(info)
    print(f"\n{model}: " + ", ".join(f"{k} {v:.3g}" for k, v in info.items()))
