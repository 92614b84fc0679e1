"""Every registered model on real CharacterTrajectories batches (tiny sizes, CPU).

One parametrised test per model checks: logits (B, 20) and finite gradients under index and
physical time; the loss falls when fitting one batch; padding (steps at or past ``lengths``,
filled with garbage) does not change a shorter series' logits; halving every timestamp changes
the logits exactly when the model does not declare ``time_scale_invariant``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bench.data import CharacterTrajectoriesDataModule, SequenceBatch
from bench.models import create_model, get_model_entry, list_models

SERIES = 8  # series per batch
STEPS = 40  # crop: the first 40 of 182 steps keep the slow ODE/CDE models fast
HIDDEN = 8
SMALL = {"memory_order": 6}  # small memories where a model has one

# Parameters whose gradient is zero on these complete series (missing_rate 0): GRU-D's input
# decay acts on missing values only (tests/baselines checks it on a batch with missing values).
NO_GRADIENT = {"gru-d": ("w_gamma_x", "b_gamma_x")}

DATA_DIR = Path(os.environ.get("BENCH_DATA_DIR", Path(__file__).resolve().parents[2].parent
                               / "shared" / "data"))


def crop(batch: SequenceBatch, steps: int) -> SequenceBatch:
    """The first ``steps`` steps of every series (lengths clipped; per-step extras cropped)."""
    L = batch.values.shape[1]
    extras = {}
    for key, value in batch.extras.items():
        # per-step extras have L (points) or L - 1 (intervals) along dim 1
        extras[key] = value[:, : steps - (L - value.shape[1])]
    return SequenceBatch(
        values=batch.values[:, :steps], times=batch.times[:, :steps],
        mask=batch.mask[:, :steps], lengths=batch.lengths.clamp(max=steps),
        labels=batch.labels, extras=extras,
    )


_batches: dict[tuple[str, tuple[str, ...]], SequenceBatch] = {}


@pytest.fixture(scope="module")
def real_batch(require_data):
    """``get(time, extras) -> SequenceBatch``: 8 real training series, cropped, cached per key."""
    if not (DATA_DIR / "CharacterTrajectories").is_dir():
        require_data(f"CharacterTrajectories not found under {DATA_DIR} (set BENCH_DATA_DIR)")

    def get(time: str, extras: dict) -> SequenceBatch:
        key = (time, tuple(extras))
        if key not in _batches:
            dm = CharacterTrajectoriesDataModule(
                DATA_DIR, train_hz=1.0, eval_hz=1.0, time=time, missing_rate=0.0,
                batch_size=SERIES, seed=0, extras=extras,
            )
            dm.setup("fit")
            _batches[key] = crop(next(iter(dm.train_dataloader())), STEPS)
        return _batches[key]

    return get


def build(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    accepted = set(get_model_entry(name).load().__init__.__code__.co_varnames)
    kw = {k: v for k, v in SMALL.items() if k in accepted}
    return create_model(name, 3, 20, hidden_size=HIDDEN, **kw)


def garbage_after(batch: SequenceBatch, lengths: torch.Tensor) -> SequenceBatch:
    """``batch`` with new ``lengths`` and garbage values and mask past them; extras dropped
    (a model must compute what it needs itself, and precomputed extras would hide the garbage)."""
    g = torch.Generator().manual_seed(3)
    past = torch.arange(batch.values.shape[1])[None] >= lengths[:, None]  # (B, L)
    junk = 50 * torch.randn(batch.values.shape, generator=g)
    values = torch.where(past[..., None], junk, batch.values)
    mask = torch.where(past[..., None], torch.rand(batch.mask.shape, generator=g) < 0.5,
                       batch.mask)
    return SequenceBatch(values, batch.times, mask, lengths, batch.labels)


@pytest.mark.parametrize("name", list_models())
def test_model_on_real_batches(name: str, real_batch, monkeypatch) -> None:
    # The thread count is the process's (the executor's) to set: a model that changed it would
    # arm MKL's batched-LU race for everything after it (hippo/linalg.py).
    def refuse(n: int) -> None:
        raise AssertionError(f"{name} called torch.set_num_threads({n})")

    monkeypatch.setattr(torch, "set_num_threads", refuse)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # a code path for one thread hides
    model = build(name)
    extras = dict(type(model).batch_extras)

    # forward + backward, both time modes
    for time in ("index", "physical"):
        batch = real_batch(time, extras)
        model.zero_grad()
        logits = model(batch)
        assert logits.shape == (SERIES, 20), f"{name} ({time} time): logits {tuple(logits.shape)}"
        assert torch.isfinite(logits).all(), f"{name} ({time} time): non-finite logits"
        F.cross_entropy(logits, batch.labels).backward()
        # every trainable parameter gets a finite gradient, not zero unless NO_GRADIENT says why
        for pname, p in model.named_parameters():
            if p.requires_grad:
                assert p.grad is not None, f"{name} ({time} time): {pname} got no gradient"
                assert torch.isfinite(p.grad).all(), f"{name} ({time} time): {pname}"
                assert (p.grad != 0).any() or pname in NO_GRADIENT.get(name, ()), \
                    f"{name} ({time} time): {pname} got a zero gradient"

    # padding past lengths does not change a shorter series' logits
    batch = real_batch("physical", extras)
    model.eval()
    short = batch.lengths.clone()
    short[::2] = torch.tensor([25, 12, 33, 1])[: len(short[::2])]
    with torch.no_grad():
        padded = model(garbage_after(batch, short))
        # the same series with 7 fewer steps (the others are cut, so compare only the short)
        alone = model(garbage_after(crop(batch, 33), short.clamp(max=33)))
    torch.testing.assert_close(padded[::2], alone[::2], rtol=1e-4, atol=1e-5,
                               msg=lambda m: f"{name}: padding changed the logits\n{m}")

    # a uniform clock scale changes the logits exactly when the model does not declare
    # time_scale_invariant (the runner then reuses one run for conditions differing only in it)
    batch = real_batch("index", extras)  # steps of 1 -> 0.5: a large change for any clock reader

    def at_scale(scale: float) -> SequenceBatch:
        times = batch.times * scale
        computed = {k: fn(batch.values, times, batch.mask, batch.lengths) for k, fn in extras.items()}
        return SequenceBatch(batch.values, times, batch.mask, batch.lengths, batch.labels, computed)

    with torch.no_grad():
        base, half = model(at_scale(1.0)), model(at_scale(0.5))
    if get_model_entry(name).time_scale_invariant():
        torch.testing.assert_close(half, base, rtol=1e-5, atol=1e-6,
                                   msg=lambda m: f"{name} declares time_scale_invariant\n{m}")
    else:
        assert (half - base).abs().max() > 1e-4, (
            f"{name}: halving every timestamp leaves the logits unchanged; declare "
            f"time_scale_invariant = True on its class")

    # fitting one batch: the loss falls
    model = build(name, seed=1)
    model.train()
    batch = real_batch("index", extras)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(batch), batch.labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert min(losses[-3:]) < 0.7 * losses[0], f"{name}: loss {losses[0]:.3f} -> {losses[-1]:.3f}"
