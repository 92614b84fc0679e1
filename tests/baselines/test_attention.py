"""The causal transformer (baselines.attention): streaming ``step`` (KV cache) equals ``forward``
and ``state_size(length)`` counts the cache it keeps; outputs are causal and padded steps are
ignored; continuous-time positions (scaling ``times`` and ``time_unit`` together changes nothing;
physical time at the source rate is index time); attention equals an explicit softmax; RoPE
depends on position differences only; gradcheck on a tiny model."""

from __future__ import annotations

import math

import pytest
import torch

from baselines.attention import rotate, sinusoidal, state_floats
from bench.batch import SequenceBatch
from bench.models import create_model

TOL = 1e-10  # float64 (measured: below 1e-15)
POSITIONS = [{"rope": False}, {"rope": True}]


def _batch(L: int, batch: int = 3, seed: int = 0, times=None, lengths=None) -> SequenceBatch:
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(batch, L, 3, generator=g, dtype=torch.float64)
    if times is None:
        times = torch.arange(L, dtype=torch.float64).expand(batch, L).contiguous()
    lengths = torch.full((batch,), L) if lengths is None else lengths
    return SequenceBatch(values, times, torch.ones(batch, L, 3, dtype=torch.bool), lengths,
                         torch.zeros(batch, dtype=torch.long))


def _model(**kw) -> torch.nn.Module:
    torch.manual_seed(0)
    kw = {"hidden_size": 16, "n_layers": 2, **kw}
    return create_model("transformer", 3, 5, **kw).double().eval()


@pytest.mark.parametrize("pos", POSITIONS)
@pytest.mark.parametrize("readout", ["mean", "last"])
def test_streaming_step_equals_forward_and_state_size_is_the_kv_cache(pos, readout) -> None:
    model = _model(readout=readout, **pos)
    L = 19
    times = 0.37 + 0.5 * torch.arange(L, dtype=torch.float64).expand(3, L)  # an offset clock
    batch = _batch(L, times=times)
    full = model(batch)
    state = model.init_state(3, dtype=torch.float64)
    for t in range(L):
        logits, state = model.step(batch.values[:, t], batch.times[:, t], state)
        assert state_floats(state) == 3 * model.state_size(t + 1)
    assert (logits - full).abs().max() < TOL
    # keys and values of every layer at every step, + the mean's running sum, + t0
    assert model.state_size(L) == 2 * 2 * L * 16 + (16 if readout == "mean" else 0) + 1
    assert [tuple(s["k"].shape) for s in state["layers"]] == [(3, 4, L, 4)] * 2


@pytest.mark.parametrize("pos", POSITIONS)
def test_outputs_are_causal_and_padding_is_ignored(pos) -> None:
    model = _model(**pos)
    batch = _batch(30)
    base = model.features(batch)
    values = batch.values.clone()
    values[:, 20:] = 50 * torch.randn(3, 10, 3, dtype=torch.float64)
    times = batch.times.clone()
    times[:, 20:] = -7.0  # garbage times too: padded positions must not matter
    later = model.features(SequenceBatch(values, times, batch.mask, batch.lengths, batch.labels))
    assert (later[:, :20] - base[:, :20]).abs().max() == 0
    short = torch.tensor([20, 20, 20])
    padded = model(SequenceBatch(values, times, batch.mask, short, batch.labels))
    cut = SequenceBatch(batch.values[:, :20], batch.times[:, :20], batch.mask[:, :20], short,
                        batch.labels)
    assert (padded - model(cut)).abs().max() < TOL
    model.readout = "last"
    padded = model(SequenceBatch(values, times, batch.mask, short, batch.labels))
    assert (padded - model(cut)).abs().max() < TOL


@pytest.mark.parametrize("pos", POSITIONS)
def test_physical_time_positions(pos) -> None:
    L, hz = 25, 200.0
    index = _batch(L)
    seconds = index.times / hz
    physical = SequenceBatch(index.values, seconds, index.mask, index.lengths, index.labels)
    at_index = _model(**pos)(index)
    # at the source rate, physical time with time_unit = one sample is index time
    assert (_model(time_unit=1 / hz, **pos)(physical) - at_index).abs().max() < 1e-12
    # scaling times and time_unit together leaves the logits unchanged
    for scale in (1e-3, 7.0):
        scaled = SequenceBatch(index.values, seconds * scale, index.mask, index.lengths, index.labels)
        assert (_model(time_unit=scale / hz, **pos)(scaled) - at_index).abs().max() < 1e-12  # measured 3e-16
    # half the rate: the same samples sit at positions 0, 2, 4, ...: the logits change
    slow = SequenceBatch(index.values, 2 * seconds, index.mask, index.lengths, index.labels)
    assert (_model(time_unit=1 / hz, **pos)(slow) - at_index).abs().max() > 1e-4


def test_the_timescale_suite_passes_time_unit_to_the_transformer_only() -> None:
    from bench.suites import _time_unit

    assert _time_unit("transformer", {"time": "physical"}, 200.0) == {"time_unit": 1 / 200.0}
    assert _time_unit("transformer", {"time": "index"}, 200.0) == {}
    assert _time_unit("gla", {"time": "physical"}, 200.0) == {}  # reads no times


def test_attention_equals_an_explicit_causal_softmax() -> None:
    model = _model(n_layers=1)
    attn = model.mixers[0]
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    p = torch.arange(9, dtype=torch.float64).expand(2, 9)
    q, k, v = attn.qkv(x).view(2, 9, 3, 4, 4).permute(2, 0, 3, 1, 4)
    scores = q @ k.transpose(-1, -2) / math.sqrt(4)
    scores = scores.masked_fill(~torch.ones(9, 9, dtype=torch.bool).tril(), -math.inf)
    expected = attn.out((scores.softmax(-1) @ v).transpose(1, 2).flatten(2))
    assert (attn(x, p) - expected).abs().max() < TOL


def test_rope_depends_on_position_differences_and_sinusoidal_on_real_positions() -> None:
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(2, 1, 1, 8, generator=g, dtype=torch.float64).unbind(0)
    p, s = torch.tensor([[3.25]], dtype=torch.float64), torch.tensor([[1.5]], dtype=torch.float64)
    dot = (rotate(q[None], p) * rotate(k[None], s)).sum()
    for shift in (0.1, 40.0):
        assert abs((rotate(q[None], p + shift) * rotate(k[None], s + shift)).sum() - dot) < TOL
    assert abs(rotate(q[None], p).norm() - q.norm()) < TOL
    pe = sinusoidal(torch.tensor([0.0, 0.5], dtype=torch.float64), 6)
    assert pe.shape == (2, 6) and torch.equal(pe[0], torch.tensor([0.0, 0, 0, 1, 1, 1], dtype=torch.float64))
    assert abs(pe[1, 0] - math.sin(0.5)) < TOL


@pytest.mark.parametrize("pos", POSITIONS)
def test_tiny_model_gradcheck(pos) -> None:
    torch.manual_seed(0)
    model = create_model("transformer", 3, 3, hidden_size=4, n_layers=1, num_heads=1,
                         mlp_ratio=1, dropout=0.0, **pos).double()
    batch = _batch(5, batch=2)

    def f(values):
        return model(SequenceBatch(values, batch.times, batch.mask, batch.lengths, batch.labels))

    assert torch.autograd.gradcheck(f, (batch.values.clone().requires_grad_(),), eps=1e-6, atol=1e-7)


def test_bad_arguments_name_the_field() -> None:
    with pytest.raises(ValueError, match="hidden_size must be a multiple of num_heads"):
        create_model("transformer", 3, 5, hidden_size=10, num_heads=4)
    with pytest.raises(ValueError, match="time_unit must be a positive number"):
        create_model("transformer", 3, 5, time_unit=0.0)
    with pytest.raises(ValueError, match="readout must be one of mean, last"):
        create_model("transformer", 3, 5, readout="max")
