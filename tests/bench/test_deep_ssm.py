"""Deep SSMs (baselines.deep_ssm): zero-shot sampling-rate change, streaming step mode,
the optimiser hook, readouts and padding, Mamba's two scans.

Rate invariance (untrained models, CPU, float32). A smooth 3-channel signal (sines of 0.5 to
2 Hz) over [0, 0.9] s is sampled at 200 Hz (181 samples) and at 100 Hz (91 samples; same end
points). Under physical time (``time_unit = 1/200`` s) the 100 Hz logits must match the 200 Hz
ones to ``PHYS_TOL`` (relative, per series); under index time they must not (the step size
stays one step, so every SSM timescale doubles in seconds).

Why ``PHYS_TOL = 0.15``: with the step rescaled, ZOH is exact for the *held* input, so what
remains is the difference between the two hold signals: a lag of half a sample (2.5 ms vs
5 ms), i.e. a relative input error about ``w (dt100 - dt200) / 2 = 2 pi 2 Hz 2.5 ms = 0.03``
for the fastest component, larger for modes oscillating above the 100 Hz Nyquist frequency
(S4D-LegS has such modes at dt = 0.1: it shows the largest errors, 0.04 to 0.09 measured with
the last-step readout), passed through two layers and LayerNorms. Measured: 0.001 to 0.09
(last), 0.005 to 0.015 (mean, which adds the Riemann-sum difference of the two means).
Index time measured 0.2 to 1.2 (S4D), 0.03 to 0.07 (LSSL), 0.02 to 0.06 (Mamba).

To measure the SSMs and not the paths around them: the skip ``D u`` (rate-invariant by
construction) is zeroed and the decoder bias too. Mamba also gets an identity depthwise
convolution (the width-4 conv sees samples and is not rescaled, module docstring) and its
``out_proj`` scaled by 30: at initialisation its mixer adds about 1 % to the residual stream,
so without it logits barely depend on the SSM in either time mode. Mamba's default Euler
step for B is itself step-dependent for fast modes (``delta / (1 - exp(delta A))`` is not
``-1/A`` unless ``delta |A| << 1``; hippo.scan): measured phys errors 0.007 to 0.023 against
0.001 to 0.003 with ``b_method="zoh"``, so the Euler variant gets the weaker separation check.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from baselines.deep_ssm import rate_multipliers
from bench.data import SequenceBatch
from bench.models import create_model

PHYS_TOL = 0.15
NAMES = ["s4d", "s4d-lin", "lssl", "mamba"]


def _signal(M: int, hz: float, B: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    f = 0.5 + 1.5 * torch.rand(B, 1, 3, generator=g)
    phase = 2 * math.pi * torch.rand(B, 1, 3, generator=g)
    t = torch.arange(M, dtype=torch.float64) / hz
    v = torch.sin(2 * math.pi * f * t[None, :, None] + phase) + 0.5 * torch.cos(
        math.pi * f * t[None, :, None])
    return v.float(), t.float().expand(B, M).contiguous()


def _batch(values: torch.Tensor, times: torch.Tensor, lengths=None) -> SequenceBatch:
    B, L, C = values.shape
    lengths = torch.full((B,), L) if lengths is None else lengths
    return SequenceBatch(values, times, torch.ones(B, L, C, dtype=torch.bool), lengths,
                         torch.arange(B) % 5)


def _isolated(name: str, time_unit: float, readout: str, seed: int, **kw):
    torch.manual_seed(seed)
    model = create_model(name, 3, 5, hidden_size=32, n_layers=2, dropout=0.0,
                         readout=readout, time_unit=time_unit, **kw).eval()
    with torch.no_grad():
        model.decoder.bias.zero_()
        for mixer in model.mixers:
            mixer.D.zero_()
            if hasattr(mixer, "conv"):
                mixer.conv.weight.zero_()
                mixer.conv.weight[:, 0, -1] = 1.0
                mixer.conv.bias.zero_()
                mixer.out_proj.weight.mul_(30.0)
    return model


def _rel(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float(((x - ref).norm(dim=1) / ref.norm(dim=1)).max())


@pytest.mark.parametrize("name,kw,separation", [
    ("s4d", {}, 4.0), ("s4d-lin", {}, 4.0), ("lssl", {}, 4.0),
    ("mamba", {"b_method": "zoh"}, 4.0), ("mamba", {}, 1.5),
])
def test_rate_change_zero_shot_in_physical_time_not_in_index_time(name, kw, separation):
    v200, t200 = _signal(181, 200.0)
    v100, t100 = _signal(91, 100.0)
    for seed in (0, 1):
        for readout in ("last", "mean"):
            phys = _isolated(name, 1 / 200, readout, seed, **kw)
            with torch.no_grad():
                ref = phys(_batch(v200, t200))
                err_phys = _rel(phys(_batch(v100, t100)), ref)
            assert err_phys < PHYS_TOL, (name, readout, seed, err_phys)
            if readout == "mean":  # the mean's Riemann-sum floor hides index-time effects
                continue
            index = _isolated(name, 1.0, readout, seed, **kw)
            steps = torch.arange(91, dtype=torch.float32).expand(4, 91)
            with torch.no_grad():
                same = index(_batch(v200, torch.arange(181.0).expand(4, 181)))
                err_index = _rel(index(_batch(v100, steps)), ref)
            torch.testing.assert_close(same, ref)  # 200 Hz: index and physical coincide
            assert err_index > separation * err_phys and err_index > 0.02, (
                name, seed, err_index, err_phys)


def test_rate_multipliers_from_times_ignore_padding():
    t = torch.tensor([[0.0, 0.01, 0.02, 0.03, 99.0], [0.0, 0.005, 0.01, 7.0, -3.0],
                      [5.0, 0.0, 0.0, 0.0, 0.0]])
    m = rate_multipliers(t, torch.tensor([4, 3, 1]), 0.005)
    assert m.tolist() == [2.0, 1.0, 1.0]
    idx = torch.arange(5.0).expand(2, 5)
    assert rate_multipliers(idx, torch.tensor([5, 2]), 1.0).tolist() == [1.0, 1.0]


# ---- streaming -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("readout", ["mean", "last"])
def test_step_mode_equals_forward(name, readout):
    torch.manual_seed(0)
    model = create_model(name, 3, 5, hidden_size=16, n_layers=2, readout=readout,
                         time_unit=1 / 200).double().eval()
    v, t = _signal(30, 100.0, B=3)
    batch = _batch(v.double(), t.double())
    with torch.no_grad():
        for k in (30, 11, 1):  # forward on the first k steps = step logits after k steps
            state = model.init_state(3, torch.device("cpu"), torch.float64,
                                     sample_interval=0.01)
            for i in range(k):
                logits, state = model.step(batch.values[:, i], batch.times[:, i], state)
            sub = _batch(batch.values[:, :k], batch.times[:, :k])
            # (a 1-step series has no interval: forward uses m = 1, the stream the given one)
            expected = model(sub) if k > 1 else None
            if expected is not None:
                torch.testing.assert_close(logits, expected, rtol=1e-9, atol=1e-10)
        # without a given interval: the running estimate, exact from step 1 on in index time
        idx = _batch(batch.values, torch.arange(30.0, dtype=torch.float64).expand(3, 30))
        model.time_unit = 1.0
        state = model.init_state(3, torch.device("cpu"), torch.float64)
        for i in range(30):
            logits, state = model.step(idx.values[:, i], idx.times[:, i], state)
        torch.testing.assert_close(logits, model(idx), rtol=1e-9, atol=1e-10)


def test_step_mode_float32_tolerance():
    torch.manual_seed(0)
    model = create_model("s4d", 3, 5, hidden_size=16, n_layers=2).eval()
    v, _ = _signal(50, 200.0, B=2)
    batch = _batch(v, torch.arange(50.0).expand(2, 50))
    with torch.no_grad():
        state = model.init_state(2, torch.device("cpu"), torch.float32)
        for i in range(50):
            logits, state = model.step(batch.values[:, i], batch.times[:, i], state)
        torch.testing.assert_close(logits, model(batch), rtol=1e-4, atol=1e-4)


# ---- padding, readouts, scans, optimiser -----------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_last_readout_ignores_padding(name):
    torch.manual_seed(0)
    model = create_model(name, 3, 5, hidden_size=16, n_layers=2, readout="last").eval()
    v, t = _signal(40, 200.0, B=3)
    lengths = torch.tensor([40, 17, 1])
    junk = torch.where(torch.arange(40)[None, :, None] >= lengths[:, None, None],
                       100 * torch.randn(3, 40, 3), v)
    with torch.no_grad():
        full = model(_batch(junk, t, lengths))
        alone = torch.cat([model(_batch(v[i:i + 1, :n], t[i:i + 1, :n])) for i, n in
                           enumerate(lengths.tolist())])
    torch.testing.assert_close(full, alone, rtol=1e-4, atol=1e-5)


def test_mamba_scans_agree_in_the_model():
    v, t = _signal(70, 200.0, B=2)
    batch = _batch(v.double(), t.double())
    out = {}
    scans = ("sequential", "chunked", "fast", "auto")  # auto: the compiled scan on CPU
    for scan in scans:
        torch.manual_seed(0)
        model = create_model("mamba", 3, 5, hidden_size=8, n_layers=2, scan=scan,
                             chunk=16).double()
        model.eval()
        loss = F.cross_entropy(model(batch), batch.labels)
        loss.backward()
        out[scan] = (loss.detach(), [p.grad.clone() for p in model.parameters()])
    for scan in scans[1:]:
        torch.testing.assert_close(out[scan][0], out["sequential"][0], rtol=1e-10, atol=0)
        for a, b in zip(out[scan][1], out["sequential"][1], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("name,expected", [
    ("s4d", {"log_dt", "log_A_real", "A_imag", "B"}), ("lssl", {"log_dt"}),
    ("mamba", {"A_log", "dt_proj.bias"}),
])
def test_configure_optimizers_groups_and_cosine(name, expected):
    model = create_model(name, 3, 5, hidden_size=8, n_layers=2)
    out = model.configure_optimizers(lr=0.01, weight_decay=0.05, total_steps=10)
    opt, sched = out["optimizer"], out["lr_scheduler"]["scheduler"]
    assert isinstance(opt, torch.optim.AdamW) and out["lr_scheduler"]["interval"] == "step"
    general, ssm = opt.param_groups
    assert (general["lr"], general["weight_decay"]) == (0.01, 0.05)
    assert (ssm["lr"], ssm["weight_decay"]) == (1e-3, 0.0)
    names = {id(p): n.split("mixers.", 1)[-1].split(".", 1)[-1]
             for n, p in model.named_parameters()}
    assert {names[id(p)] for p in ssm["params"]} == expected
    assert len(general["params"]) + len(ssm["params"]) == len(list(model.parameters()))
    for _ in range(10):
        opt.step()
        sched.step()
    assert general["lr"] < 1e-6  # annealed to 0 over total_steps
    small = create_model(name, 3, 5, hidden_size=8, n_layers=1)
    low = small.configure_optimizers(lr=1e-4, weight_decay=0.0, total_steps=1)["optimizer"]
    assert low.param_groups[1]["lr"] == 1e-4  # min(lr, 1e-3)


# ---- step mode of the recurrent models -------------------------------------------------------
@pytest.mark.parametrize("name,kw", [
    ("hippo-legs", {}), ("hippo-legs", {"timestamped": True}), ("hippo-legt", {}),
    ("lstm", {}), ("gru", {}), ("lmu", {}),
])
def test_recurrent_models_step_equals_forward(name, kw):
    torch.manual_seed(0)
    model = create_model(name, 3, 5, hidden_size=8, **kw).double().eval()
    v, t = _signal(25, 200.0, B=3)
    batch = _batch(v.double(), t.double() + 0.005)  # timestamped LegS needs t > 0
    with torch.no_grad():
        state = model.init_state(3, torch.device("cpu"), torch.float64)
        for i in range(25):
            logits, state = model.step(batch.values[:, i], batch.times[:, i], state)
        torch.testing.assert_close(logits, model(batch), rtol=1e-7, atol=1e-9)


def test_measure_streaming_reports_rates_and_constant_state():
    from bench.throughput import measure_streaming

    torch.manual_seed(0)
    model = create_model("s4d", 3, 5, hidden_size=8, n_layers=2, state_size=4)
    v, t = _signal(12, 200.0, B=2)
    before = {k: p.clone() for k, p in model.state_dict().items()}
    out = measure_streaming(model, _batch(v, t), torch.device("cpu"), warmup=0, iters=2)
    assert out["stream_steps_per_s"] == pytest.approx(out["stream_samples_per_s"] * 12)
    # S4D state: per layer (B, H, N/2) complex64, the (B, H) float32 running sum, t0 (B,) f64
    expected = 2 * (2 * 8 * 2 * 8) + 2 * 8 * 4 + 2 * 8
    assert out["state_bytes"] == out["state_bytes_first_step"] == expected
    assert all(torch.equal(before[k], p) for k, p in model.state_dict().items())
    with pytest.raises(TypeError, match="no streaming"):
        measure_streaming(create_model("gru-d", 3, 5, hidden_size=4), _batch(v, t),
                          torch.device("cpu"))
