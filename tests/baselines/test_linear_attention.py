"""GLA and Gated DeltaNet (baselines.linear_attention): the chunked kernels equal the recurrent
ones in float64 (values, final states and gradients) at lengths the chunk does and does not
divide; the models' chunk and recurrent modes agree, ``step`` streams ``forward``, outputs are
causal, ``state_size`` counts the floats the step keeps; against fla's naive references when
``fla`` is importable (an optional extra, skipped otherwise)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from baselines.attention import state_floats
from baselines.linear_attention import (
    gated_delta_chunked,
    gated_delta_recurrent,
    gla_chunked,
    gla_recurrent,
)
from bench.batch import SequenceBatch
from bench.models import create_model

TOL = 1e-10  # float64, chunked against recurrent (measured: values and states below 3e-14, gradients 4e-15)
B, H, K, V = 2, 3, 5, 7


def _inputs(L: int, seed: int = 0, decay: float = 1.0, dtype=torch.float64):
    """q, k (unit keys for the delta rule), v, GLA's per-channel log decay, the delta rule's
    scalar log decay and beta; ``decay`` scales the gate logits (large: fast forgetting)."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype)

    q, k, v = rand(B, H, L, K), rand(B, H, L, K), rand(B, H, L, V)
    gk = F.logsigmoid(decay * rand(B, H, L, K))
    gs = F.logsigmoid(decay * rand(B, H, L))
    beta = torch.rand(B, H, L, generator=g, dtype=dtype)
    return q, k, v, gk, gs, beta


def _gla(form, q, k, v, gk, gs, beta, chunk, state=None):
    if form == "recurrent":
        return gla_recurrent(q, k, v, gk, state=state)
    return gla_chunked(q, k, v, gk, chunk=chunk, state=state)


def _delta(form, q, k, v, gk, gs, beta, chunk, state=None):
    k = F.normalize(k, dim=-1)
    if form == "recurrent":
        return gated_delta_recurrent(q, k, v, gs, beta, state=state)
    return gated_delta_chunked(q, k, v, gs, beta, chunk=chunk, state=state)


KERNELS = {"gla": _gla, "gated-delta": _delta}


@pytest.mark.parametrize("kernel", list(KERNELS))
@pytest.mark.parametrize("L", [1, 2, 37, 100])
@pytest.mark.parametrize("chunk", [1, 16, 64])
def test_chunked_equals_recurrent_with_gradients(kernel: str, L: int, chunk: int) -> None:
    fn = KERNELS[kernel]
    inputs = [x.requires_grad_() for x in _inputs(L)]
    S0 = torch.randn(B, H, K, V, dtype=torch.float64, requires_grad=True)
    w_o, w_s = torch.randn(B, H, L, V, dtype=torch.float64), torch.randn(B, H, K, V, dtype=torch.float64)
    results = {}
    for form in ("recurrent", "chunk"):
        o, S = fn(form, *inputs, chunk, S0)
        grads = torch.autograd.grad((o * w_o).sum() + (S * w_s).sum(), [*inputs, S0], allow_unused=True)
        results[form] = (o, S, grads)
    (o1, S1, g1), (o2, S2, g2) = results["recurrent"], results["chunk"]
    assert (o1 - o2).abs().max() < TOL and (S1 - S2).abs().max() < TOL
    for a, b in zip(g1, g2, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            assert (a - b).abs().max() < TOL * max(1.0, a.abs().max().item())


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_chunked_form_is_stable_under_fast_forgetting(kernel: str) -> None:
    # gate logits around -60: log decays down to ~-60 per step, e^-2000 across a chunk; the
    # chunked form exponentiates differences only, so float32 stays finite and float64 exact
    fn = KERNELS[kernel]
    inputs = _inputs(40, decay=60.0)
    o1, _ = fn("recurrent", *inputs, 16)
    o2, _ = fn("chunk", *inputs, 16)
    assert (o1 - o2).abs().max() < TOL
    o3, _ = fn("chunk", *(x.float() for x in inputs), 16)
    assert torch.isfinite(o3).all() and (o3.double() - o1).abs().max() < 1e-4


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_chunked_kernel_gradcheck(kernel: str) -> None:
    fn = KERNELS[kernel]
    inputs = tuple(x[:1, :1, :, :].clone() if x.ndim == 4 else x[:1, :1].clone()
                   for x in _inputs(7))
    inputs = tuple(x.requires_grad_() for x in inputs)

    def f(*xs):
        return fn("chunk", *xs, 3)[0]

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7)


def _batch(L: int, C: int = 3, batch: int = 3, seed: int = 0, lengths=None) -> SequenceBatch:
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(batch, L, C, generator=g, dtype=torch.float64)
    times = torch.arange(L, dtype=torch.float64).expand(batch, L).contiguous()
    lengths = torch.full((batch,), L) if lengths is None else lengths
    return SequenceBatch(values, times, torch.ones(batch, L, C, dtype=torch.bool), lengths,
                         torch.zeros(batch, dtype=torch.long))


def _model(name: str, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, 3, 5, hidden_size=16, n_layers=2, **kw).double().eval()


NAMES = ["gla", "gated-deltanet"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("L", [1, 37, 100])
def test_model_chunk_mode_equals_recurrent_mode(name: str, L: int) -> None:
    model = _model(name, chunk=16)
    batch = _batch(L)
    chunked = model.features(batch)
    for m in model.mixers:
        m.mode = "recurrent"
    assert (model.features(batch) - chunked).abs().max() < TOL


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("readout", ["mean", "last"])
def test_streaming_step_equals_forward_and_state_size_counts_its_tensors(name: str, readout: str) -> None:
    model = _model(name, readout=readout)
    batch = _batch(23)
    full = model(batch)
    state = model.init_state(3, dtype=torch.float64)
    assert state_floats(state) == 3 * model.state_size()
    for t in range(23):
        logits, state = model.step(batch.values[:, t], batch.times[:, t], state)
        assert state_floats(state) == 3 * model.state_size(t + 1)
    assert (logits - full).abs().max() < TOL


def test_state_size_formulas_at_the_default_size() -> None:
    # 4 layers, d 128, 4 heads; mean readout adds d_model = 128
    gla = create_model("gla", 3, 20)
    assert gla.state_size() == 4 * (4 * 16 * 32) + 128  # H K V: head_k 0.5 d / H, head_v d / H
    gdn = create_model("gated-deltanet", 3, 20)
    channels = 4 * (2 * 24 + 48)  # head_dim 0.75 d / H = 24, head_v 2 x 24
    assert gdn.state_size() == 4 * (4 * 24 * 48 + channels * 3) + 128
    assert gdn.state_size(1000) == gdn.state_size(1)  # no cache: independent of the length


@pytest.mark.parametrize("name", NAMES)
def test_outputs_are_causal_and_padding_is_ignored(name: str) -> None:
    model = _model(name, chunk=8)
    batch = _batch(30)
    base = model.features(batch)
    changed = batch.values.clone()
    changed[:, 20:] += 10.0
    later = model.features(SequenceBatch(changed, batch.times, batch.mask, batch.lengths, batch.labels))
    assert (later[:, :20] - base[:, :20]).abs().max() == 0
    assert (later[:, 20:] - base[:, 20:]).abs().max() > 1e-3
    short = torch.tensor([20, 20, 20])
    padded = model(SequenceBatch(changed, batch.times, batch.mask, short, batch.labels))
    cut = model(SequenceBatch(batch.values[:, :20], batch.times[:, :20], batch.mask[:, :20], short,
                              batch.labels))
    assert (padded - cut).abs().max() < TOL


@pytest.mark.parametrize("name", NAMES)
def test_tiny_model_gradcheck(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, 2, 3, hidden_size=4, n_layers=1, num_heads=2, mlp_ratio=1,
                         dropout=0.0, chunk=2).double()
    batch = _batch(5, C=2, batch=2)

    def f(values):
        return model(SequenceBatch(values, batch.times, batch.mask, batch.lengths, batch.labels))

    assert torch.autograd.gradcheck(f, (batch.values.clone().requires_grad_(),), eps=1e-6, atol=1e-7)


def test_bad_arguments_name_the_field() -> None:
    with pytest.raises(ValueError, match="mode must be one of chunk, recurrent"):
        create_model("gla", 3, 5, mode="fused")
    with pytest.raises(ValueError, match="chunk must be a positive integer"):
        create_model("gated-deltanet", 3, 5, chunk=0)


# ---- against flash-linear-attention's naive references (optional extra) ------------------------
def test_against_fla_naive_references() -> None:
    gla_naive = pytest.importorskip("fla.ops.gla.naive", reason="fla (flash-linear-attention) not installed")
    gdr_naive = pytest.importorskip("fla.ops.gated_delta_rule.naive")
    q, k, v, gk, gs, beta = _inputs(37, dtype=torch.float32)

    def fla_layout(x):  # (B, H, L, ...) -> (B, L, H, ...)
        return x.transpose(1, 2).contiguous()

    o_ref, S_ref = gla_naive.naive_recurrent_gla(*map(fla_layout, (q, k, v, gk)), output_final_state=True)
    o, S = gla_chunked(q, k, v, gk, chunk=16)
    torch.testing.assert_close(o, o_ref.transpose(1, 2), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(S, S_ref, rtol=1e-4, atol=1e-5)
    kn = F.normalize(k, dim=-1)
    o_ref, S_ref = gdr_naive.naive_recurrent_gated_delta_rule(
        *map(fla_layout, (q, kn, v, beta, gs)), output_final_state=True)
    o, S = gated_delta_chunked(q, kn, v, gs, beta, chunk=16)
    torch.testing.assert_close(o, o_ref.transpose(1, 2), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(S, S_ref, rtol=1e-4, atol=1e-5)
