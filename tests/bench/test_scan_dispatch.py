"""Which selective scan runs (hippo.scan, ``scan="auto"``) and the record saying so: mamba_ssm's
kernel on CUDA where it applies, checked on CPU with a fake ``mamba_ssm`` module and the CUDA
condition forced (the real kernel against ours: tests/test_gpu_kernels.py, marker gpu)."""

from __future__ import annotations

import dataclasses
import sys
import types

import bench_fakes
import pytest
import torch
import torch.nn.functional as F

from bench.batch import SequenceBatch
from bench.models import create_model
from bench.runner import run_suite
from hippo import scan


class FakeMambaSSM:
    """Stands in for ``mamba_ssm.ops.selective_scan_interface``: keeps every call's arguments and
    computes the scan with our torch path (mamba's layout is ours: a wrong layout fails there)."""

    selective_scan_cuda = object()  # the CUDA extension is "there"

    def __init__(self):
        self.calls: list[tuple[tuple, dict]] = []

    def selective_scan_fn(self, u, delta, A, B, C, D=None, z=None, delta_bias=None,
                          delta_softplus=False, return_last_state=False):
        self.calls.append(((u, delta, A, B, C), dict(D=D, z=z, delta_bias=delta_bias,
                                                     delta_softplus=delta_softplus,
                                                     return_last_state=return_last_state)))
        x0 = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
        return scan._FastScan.apply(u, delta, A, B, C, x0, False)[0]


@pytest.fixture
def fake_mamba(monkeypatch):
    """The fake module in sys.modules and every tensor taken as on CUDA (mamba_ssm's condition)."""
    fake = FakeMambaSSM()
    module = types.ModuleType(scan.MAMBA_SSM_MODULE)
    module.selective_scan_fn = fake.selective_scan_fn
    module.selective_scan_cuda = fake.selective_scan_cuda
    monkeypatch.setitem(sys.modules, scan.MAMBA_SSM_MODULE, module)
    monkeypatch.setattr(scan, "_on_cuda", lambda *tensors: True)
    scan.reset_paths_used()
    yield fake
    scan.reset_paths_used()


def _inputs(Bt=2, D=3, N=4, L=9):
    g = torch.Generator().manual_seed(0)
    u = torch.randn(Bt, D, L, generator=g)
    delta = F.softplus(torch.randn(Bt, D, L, generator=g))
    A = -torch.arange(1, N + 1, dtype=torch.float32).expand(D, N).contiguous()
    return u, delta, A, torch.randn(Bt, N, L, generator=g), torch.randn(Bt, N, L, generator=g)


def test_auto_takes_mamba_ssm_on_cuda_and_falls_back_with_a_reason(fake_mamba):
    u, delta, A, B, C = _inputs()
    assert scan.resolve_mode("auto", u, delta, A, B, C) == "mamba_ssm"
    y = scan.selective_scan(u, delta, A, B, C)
    (args, kwargs), = fake_mamba.calls
    assert all(a is b for a, b in zip(args, (u, delta, A, B, C), strict=True))
    assert kwargs == dict(D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False)
    assert scan.paths_used() == {"selective_scan": "mamba_ssm"}
    torch.testing.assert_close(y, scan.selective_scan(u, delta, A, B, C, mode="sequential"))
    scan.reset_paths_used()
    for kwargs, reason in ((dict(zoh_b=True), "zoh_b"), (dict(state=torch.zeros(2, 3, 4)), "initial state"),
                           (dict(return_state=True), "return_state")):  # fmt: skip
        assert scan.resolve_mode("auto", u, delta, A, B, C, **kwargs) == "fast"
        assert reason in scan.mamba_ssm_unusable(u, delta, A, B, C, **kwargs)
    d64 = delta.double()
    assert "dtypes" in scan.mamba_ssm_unusable(u, d64, A, B, C)
    with pytest.raises(ValueError, match="mode 'mamba_ssm' cannot run: zoh_b"):
        scan.selective_scan(u, delta, A, B, C, mode="mamba_ssm", zoh_b=True)
    assert len(fake_mamba.calls) == 1
    scan.selective_scan(u, delta, A, B, C, zoh_b=True)  # auto: the torch scan, and why
    assert scan.paths_used() == {"selective_scan": "fast-torch",
                                 "selective_scan_fallback": scan.mamba_ssm_unusable(u, delta, A, B, C, zoh_b=True)}


def test_without_mamba_ssm_auto_is_the_torch_scan_on_cuda_and_compiled_on_cpu(monkeypatch):
    monkeypatch.setitem(sys.modules, scan.MAMBA_SSM_MODULE, None)  # import fails: not installed
    monkeypatch.setattr(scan, "_mamba_import_error", None)
    args = _inputs()
    cpu = "compiled" if scan.compiled_applies(*args) else "fast"
    assert scan.resolve_mode("auto", *args) == cpu  # no CUDA: mamba_ssm is never asked
    monkeypatch.setattr(scan, "_on_cuda", lambda *tensors: True)
    assert scan.resolve_mode("auto", *args) == "fast"
    assert "mamba_ssm is not usable" in scan.mamba_ssm_unusable(*args)
    module = types.ModuleType(scan.MAMBA_SSM_MODULE)  # mamba_ssm >= 2.2 without its CUDA build
    module.selective_scan_fn, module.selective_scan_cuda = (lambda *a, **k: None), None
    monkeypatch.setitem(sys.modules, scan.MAMBA_SSM_MODULE, module)
    assert "selective_scan_cuda is missing" in scan.mamba_ssm_unusable(*args)


def test_the_mamba_model_calls_mamba_ssm_and_its_record_says_so(fake_mamba, monkeypatch, tmp_path):
    torch.manual_seed(0)
    model = create_model("mamba", 3, 5, hidden_size=8, n_layers=2).eval()  # no dropout
    values = torch.randn(4, 12, 3)
    batch = SequenceBatch(values, torch.arange(12.0).expand(4, 12), torch.ones(4, 12, 3, dtype=torch.bool),
                                      torch.full((4,), 12), torch.tensor([0, 1, 2, 3]))  # fmt: skip
    out = model(batch)
    assert len(fake_mamba.calls) == 2  # one per layer
    (u, delta, A, B, C), kwargs = fake_mamba.calls[0]
    Di, N = model.config["expand"] * 8, model.config["state_size"]
    assert u.shape == delta.shape == (4, Di, 12) and A.shape == (Di, N) and B.shape == C.shape == (4, N, 12)
    assert kwargs["D"] is None and kwargs["z"] is None and kwargs["delta_softplus"] is False
    monkeypatch.setattr(scan, "_on_cuda", lambda *tensors: False)  # the same model on the CPU scan
    torch.testing.assert_close(model(batch), out)

    monkeypatch.setattr(scan, "_on_cuda", lambda *tensors: True)
    bench_fakes.install(monkeypatch)
    spec = bench_fakes.fake_suite("smoke", [0], models=("mamba",))[0]
    spec = dataclasses.replace(spec, model_args={"hidden_size": 8, "n_layers": 1},
                               train={**spec.train, "epochs": 1, "throughput_iters": 0})
    gru = bench_fakes.fake_suite("smoke", [0], models=("fake-gru",))[0]
    first, second = run_suite([spec, gru], tmp_path, interactive=False).records
    assert first.status == "ok", first.error
    assert first.environment["kernels"] == {"selective_scan": "mamba_ssm"}
    assert "kernels" not in second.environment  # no scan ran in that run
    log = (tmp_path / "fake" / "logs" / f"{first.id}.log")
    assert log.exists() and "selective scan: mamba_ssm" in log.read_text()
