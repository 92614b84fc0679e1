"""CUDA checks (marker ``gpu``, outside the default run; ``benchmarks/gpu_check.sh`` runs them):
hippo's torch paths on CUDA against the CPU ones (the compiled CPU kernels are the reference
there), a training step of the deep and recurrent models under autocast, and mamba_ssm's
``selective_scan_fn`` against :func:`hippo.scan.selective_scan` when mamba_ssm is installed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bench.batch import SequenceBatch
from bench.models import create_model
from hippo import project
from hippo.fftconv import causal_conv
from hippo.scan import (
    mamba_ssm_unusable,
    paths_used,
    reset_paths_used,
    resolve_mode,
    selective_scan,
)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

CUDA = torch.device("cuda")


def _scan_inputs(dtype, Bt=4, D=8, N=16, L=100, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(Bt, D, L, generator=g, dtype=dtype)
    delta = F.softplus(torch.randn(Bt, D, L, generator=g, dtype=dtype) - 1)
    A = -torch.arange(1, N + 1, dtype=dtype).expand(D, N).contiguous()
    B = torch.randn(Bt, N, L, generator=g, dtype=dtype)
    C = torch.randn(Bt, N, L, generator=g, dtype=dtype)
    return [u, delta, A, B, C]


def _rel(a, b):
    return ((a.double().cpu() - b.double().cpu()).abs().max() / b.double().abs().max()).item()


@pytest.mark.parametrize("zoh_b", [False, True])
def test_scan_on_cuda_equals_cpu(zoh_b):
    cpu = [t.requires_grad_() for t in _scan_inputs(torch.float64)]
    gpu = [t.detach().to(CUDA).requires_grad_() for t in cpu]
    assert resolve_mode("auto", *gpu) == "fast"  # compiled is CPU-only, mamba_ssm float32 at most
    yc = selective_scan(*cpu, zoh_b=zoh_b)
    yg = selective_scan(*gpu, zoh_b=zoh_b)
    assert _rel(yg, yc) < 1e-10
    w = torch.randn_like(yc)
    gc = torch.autograd.grad((yc * w).sum(), cpu)
    gg = torch.autograd.grad((yg * w.to(CUDA)).sum(), gpu)
    for a, b in zip(gg, gc, strict=True):
        assert _rel(a, b) < 1e-10


def test_causal_conv_and_lti_memory_on_cuda():
    g = torch.Generator().manual_seed(1)
    u = torch.randn(3, 200, 8, generator=g, dtype=torch.float64)
    k = torch.randn(8, 200, generator=g, dtype=torch.float64)
    assert _rel(causal_conv(u.to(CUDA), k.to(CUDA), dim=1), causal_conv(u, k, dim=1)) < 1e-10
    x = torch.randn(2, 1000, generator=g, dtype=torch.float64)
    for mode in ("fft", "recurrent"):
        got = project(x.to(CUDA), "legt", 64, dt=1e-3, mode=mode)
        assert _rel(got, project(x, "legt", 64, dt=1e-3, mode=mode)) < 1e-8
    legs = project(x.to(CUDA), "legs", 32, output="last")
    assert _rel(legs, project(x, "legs", 32, output="last")) < 1e-8


@pytest.mark.parametrize("name", ["s4d", "lssl", "mamba", "hippo-legs", "lstm"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_training_step_under_autocast(name, dtype):
    g = torch.Generator().manual_seed(0)
    values = torch.randn(8, 50, 3, generator=g)
    times = torch.arange(50, dtype=torch.float32).expand(8, 50).contiguous()
    batch = SequenceBatch(values, times, torch.ones(8, 50, 3, dtype=torch.bool),
                          torch.full((8,), 50), torch.randint(0, 5, (8,), generator=g)).to(CUDA)
    torch.manual_seed(0)
    model = create_model(name, 3, 5, hidden_size=16).to(CUDA)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    for _ in range(2):
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=dtype):
            loss = F.cross_entropy(model(batch), batch.labels)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        assert torch.isfinite(loss).item()
    assert all(torch.isfinite(p).all() for p in model.parameters())


def _mamba_ssm():
    pytest.importorskip("mamba_ssm.ops.selective_scan_interface")
    why = mamba_ssm_unusable(*(t.to(CUDA) for t in _scan_inputs(torch.float32)))
    if why is not None:
        pytest.skip(why)


def test_mamba_ssm_selective_scan_fn_equals_ours():
    _mamba_ssm()
    u, delta, A, B, C = (t.to(CUDA) for t in _scan_inputs(torch.float32))
    for t in (u, delta, A, B, C):
        t.requires_grad_()
    assert resolve_mode("auto", u, delta, A, B, C) == "mamba_ssm"
    assert resolve_mode("auto", u, delta, A, B, C, zoh_b=True) == "fast"
    ours = selective_scan(u, delta, A, B, C, mode="fast")
    theirs = selective_scan(u, delta, A, B, C)  # auto: mamba_ssm's selective_scan_fn
    reference = selective_scan(*(t.detach().double().cpu() for t in (u, delta, A, B, C)), mode="sequential")
    assert _rel(theirs, reference) < 1e-4 and _rel(ours, reference) < 1e-4
    w = torch.randn_like(ours)
    g1 = torch.autograd.grad((ours * w).sum(), [u, delta, A, B, C])
    g2 = torch.autograd.grad((theirs * w).sum(), [u, delta, A, B, C])
    for a, b in zip(g2, g1, strict=True):
        assert _rel(a, b) < 1e-3


def test_mamba_model_on_mamba_ssm_equals_the_torch_scan():
    _mamba_ssm()
    g = torch.Generator().manual_seed(0)
    values = torch.randn(8, 60, 3, generator=g)
    times = torch.arange(60, dtype=torch.float32).expand(8, 60).contiguous()
    batch = SequenceBatch(values, times, torch.ones(8, 60, 3, dtype=torch.bool),
                          torch.full((8,), 60), torch.randint(0, 5, (8,), generator=g)).to(CUDA)
    out = {}
    for scan in ("auto", "fast"):
        torch.manual_seed(0)
        model = create_model("mamba", 3, 5, hidden_size=16, n_layers=2, dropout=0.0, scan=scan).to(CUDA)
        reset_paths_used()
        loss = F.cross_entropy(model(batch), batch.labels)
        loss.backward()
        out[scan] = (loss.detach(), [p.grad for p in model.parameters()], paths_used())
    assert out["auto"][2] == {"selective_scan": "mamba_ssm"} and out["fast"][2] == {"selective_scan": "fast-torch"}
    assert _rel(out["auto"][0], out["fast"][0]) < 1e-5
    for a, b in zip(out["auto"][1], out["fast"][1], strict=True):
        assert _rel(a, b) < 1e-3
