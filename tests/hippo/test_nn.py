"""HiPPO-RNN cell: its memory path equals hippo.project, LegS time modes agree, shapes, errors."""

from __future__ import annotations

import pytest
import torch

import hippo
from hippo import _ext
from hippo.nn import HiPPOCell, HiPPORNN, legs_ratios
from hippo.project import project

LTI = ("legt", "lmu", "lagt", "tlagt", "glagt", "fout")
THETA = 12.0


def forced_rnn(measure: str, N: int = 16, channels: int = 3, **kw) -> HiPPORNN:
    """A float64 HiPPO-RNN whose memory input is u = x[..., 0] (the h path to u is cut)."""
    torch.manual_seed(0)
    if measure != "legs":
        kw.setdefault("theta", THETA)
    rnn = HiPPORNN(channels, 8, measure=measure, memory_order=N, **kw).double()
    with torch.no_grad():
        rnn.cell.u_x.zero_()
        rnn.cell.u_x[0, 0] = 1.0
        rnn.cell.u_h.zero_()
        rnn.cell.u_bias.zero_()
    return rnn


def signal(B: int = 3, L: int = 40, C: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(B, L, C, generator=g, dtype=torch.float64)


@pytest.mark.parametrize(
    "measure,method",
    [(m, d) for m in ("legs", *LTI) for d in ("bilinear", "forward_euler", "backward_euler", "zoh")
     if not (m == "legs" and d == "zoh")],  # zoh is LTI only (see test_bad_arguments)
)
def test_memory_path_equals_project(measure: str, method: str) -> None:
    x = signal()
    rnn = forced_rnn(measure, method=method)
    _, mem = rnn(x, return_memory=True)  # (B, L, 1, N)
    dt = None if measure == "legs" else 1.0 / THETA
    # mode="recurrent": the reference recurrence (the FFT mode's error scales with the largest
    # value, and forward Euler is unstable for LegS and LegT here: values grow to ~1e15)
    mode = {} if measure == "legs" else {"mode": "recurrent"}
    ref = project(x[..., 0], measure, 16, dt=dt, method=method, **mode)
    scale = ref.abs().max().clamp(min=1.0)  # relative to the largest value where it explodes
    torch.testing.assert_close(mem[:, :, 0] / scale, ref / scale, rtol=0, atol=1e-6)


def test_legs_timestamped_with_index_times_equals_index_mode() -> None:
    x = signal()
    B, L, _ = x.shape
    idx = forced_rnn("legs")
    ts = forced_rnn("legs", timestamped=True)
    ts.load_state_dict(idx.state_dict())
    h_idx, m_idx = idx(x, return_memory=True)
    for times in (torch.arange(L, dtype=torch.float64),
                  0.005 * torch.arange(L, dtype=torch.float64)):
        h_ts, m_ts = ts(x, times.expand(B, L), return_memory=True)
        # LegS is scale-free: index times and physical times at a fixed rate give one memory
        torch.testing.assert_close(m_ts, m_idx, rtol=0, atol=1e-9)
        torch.testing.assert_close(h_ts, h_idx, rtol=0, atol=1e-9)


def test_legs_per_series_times_equal_project() -> None:
    """Different times per series take the O(N) scan path; still equal to project(times=...)."""
    x = signal()
    B, L, _ = x.shape
    g = torch.Generator().manual_seed(2)
    times = torch.cumsum(torch.rand(B, L, generator=g, dtype=torch.float64) + 0.1, dim=1)
    times = times - times[:, :1]  # t_0 = 0 (the first step initialises)
    rnn = forced_rnn("legs", timestamped=True)
    _, mem = rnn(x, times, return_memory=True)
    ref = project(x[..., 0], "legs", 16, times=times)
    torch.testing.assert_close(mem[:, :, 0], ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("measure,timestamped", [("legs", False), ("legs", True), ("legt", False)])
def test_forward_step_matches_sequence(measure: str, timestamped: bool) -> None:
    torch.manual_seed(0)
    x = signal(B=2, L=15)
    times = torch.cumsum(torch.rand(2, 15, dtype=torch.float64), dim=1)
    rnn = HiPPORNN(3, 6, measure=measure, memory_order=5, memory_channels=2,
                   timestamped=timestamped).double()
    h_seq, m_seq = rnn(x, times, return_memory=True)
    state = None
    for k in range(x.shape[1]):
        h, state = rnn.cell.forward_step(x[:, k], state, times[:, k])
        torch.testing.assert_close(h, h_seq[:, k], rtol=0, atol=1e-10)
        torch.testing.assert_close(state.c, m_seq[:, k], rtol=0, atol=1e-10)


def test_shapes_defaults_and_dtype() -> None:
    rnn = HiPPORNN(3, 10, measure="legs", memory_channels=2)
    assert rnn.cell.memory_order == 10  # N defaults to the hidden size
    x = torch.randn(4, 7, 3)
    h, m = rnn(x, return_memory=True)
    assert h.shape == (4, 7, 10) and m.shape == (4, 7, 2, 10)
    assert h.dtype == torch.float32
    lti = HiPPORNN(3, 10, measure="legt", memory_order=6)
    assert lti.cell.Ad.dtype == torch.float32 and lti.cell.Ad.shape == (6, 6)
    assert lti.cell.theta == 100.0  # the reference's dt = 0.01
    assert lti(x).shape == (4, 7, 10)


def test_causal_and_finite_gradients_with_garbage_padding_times() -> None:
    """Steps after k do not change outputs at k; padding times going backwards stay finite."""
    torch.manual_seed(0)
    rnn = HiPPORNN(3, 8, measure="legs", memory_order=8, timestamped=True)
    x = torch.randn(2, 12, 3)
    times = torch.arange(12.0).expand(2, 12).clone()
    times[:, 6:] = torch.tensor([-3.0, 0.0, 0.0, 100.0, 1e-30, 2.0])  # garbage past step 5
    x2 = x.clone()
    x2[:, 6:] = 1e3
    x.requires_grad_(True)
    h = rnn(x, times)
    torch.testing.assert_close(h[:, :6], rnn(x2, times)[:, :6])
    h[:, 5].sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad[:, 6:] == 0).all()
    assert all(torch.isfinite(p.grad).all() for p in rnn.parameters())


def test_legs_ratios_guard() -> None:
    t = torch.tensor([[0.0, 0.0, 1.0, 2.0, 1.0, 4.0]])
    r = legs_ratios(t)
    torch.testing.assert_close(r, torch.tensor([[0.0, 1.0, 0.5, 0.0, 0.75]], dtype=torch.float64))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"measure": "legx"}, "unknown measure"),
        ({"method": "rk4"}, "unknown method"),
        ({"method": "zoh"}, "zoh"),
        ({"theta": 10.0}, "theta is not used by legs"),
        ({"measure": "legt", "timestamped": True}, "only supported for legs"),
        ({"measure": "legt", "theta": 0.0}, "theta must be a positive"),
        ({"memory_order": 0}, "memory_order must be a positive integer"),
        ({"memory_channels": 1.5}, "memory_channels must be a positive integer"),
        ({"measure": "lagt", "measure_args": {"gamma": 1.0}}, "gamma"),
        ({"measure": "legt", "measure_args": {"theta": 3.0}}, "theta=..."),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        HiPPOCell(3, 8, **kwargs)


def test_timestamped_needs_times() -> None:
    rnn = HiPPORNN(3, 4, timestamped=True)
    with pytest.raises(ValueError, match="pass times"):
        rnn(torch.randn(1, 3, 3))


def test_measure_args_reach_the_transition() -> None:
    cell = HiPPOCell(3, 4, measure="tlagt", memory_order=5, theta=10.0, measure_args={"beta": 0.5})
    A, B = hippo.transition("tlagt", 5, beta=0.5)
    Ad, Bd = hippo.discretize(A, B, 0.1, "bilinear")
    torch.testing.assert_close(cell.Ad, Ad.float())
    torch.testing.assert_close(cell.Bd, Bd.float())


@pytest.mark.parametrize("measure,timestamped", [("legs", False), ("legs", True), ("fout", False)])
def test_fused_backward_equals_autograd(measure: str, timestamped: bool) -> None:
    """The hand-written BPTT of HiPPORNN gives autograd's gradients (via forward_step)."""
    torch.manual_seed(0)
    x = signal(B=3, L=12).requires_grad_(True)
    times = 0.01 * torch.arange(12, dtype=torch.float64).expand(3, 12)  # shared: fused path
    rnn = HiPPORNN(3, 5, measure=measure, memory_order=4, memory_channels=2,
                   timestamped=timestamped).double()
    w_h, w_c = torch.randn(3, 12, 5, dtype=torch.float64), torch.randn(3, 12, 2, 4,
                                                                        dtype=torch.float64)
    h, m = rnn(x, times, return_memory=True)
    loss = (h * w_h).sum() + (m * w_c).sum()
    fused = torch.autograd.grad(loss, [x, *rnn.parameters()])
    state, loss = None, 0.0
    for k in range(12):
        hk, state = rnn.cell.forward_step(x[:, k], state, times[:, k])
        loss = loss + (hk * w_h[:, k]).sum() + (state.c * w_c[:, k]).sum()
    ref = torch.autograd.grad(loss, [x, *rnn.parameters()])
    for a, b in zip(fused, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_fused_gradcheck() -> None:
    torch.manual_seed(0)
    rnn = HiPPORNN(2, 3, measure="legs", memory_order=3).double()
    x = torch.randn(2, 5, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: rnn(x), (x,))


@pytest.mark.skipif(not _ext.cpp_available(), reason="the C++ LegS extension did not build")
@pytest.mark.parametrize("times_mode", ["index", "shared", "per_series"])
@pytest.mark.parametrize("method", ["bilinear", "backward_euler", "forward_euler"])
def test_legs_kernel_loop_equals_dense_path(
    times_mode: str, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiled O(N) LegS loop (CPU default) gives the dense / per-step paths' values and
    gradients (float64), incl. M > 1 channels, memory outputs and frozen (ratio 0) steps."""
    torch.manual_seed(0)
    B, L = 3, 15
    rnn = HiPPORNN(3, 6, measure="legs", memory_order=5, memory_channels=2, method=method,
                   timestamped=times_mode != "index").double()
    x = signal(B=B, L=L).requires_grad_(True)
    times = None
    if times_mode == "shared":
        times = 0.3 * torch.arange(L, dtype=torch.float64).expand(B, L)
    elif times_mode == "per_series":
        times = torch.cumsum(torch.rand(B, L, dtype=torch.float64) + 0.05, dim=1)
        times[1, 9:] = times[1, 8]  # padding: repeated times freeze the memory
    w_h = torch.randn(B, L, 6, dtype=torch.float64)
    w_c = torch.randn(B, L, 2, 5, dtype=torch.float64)

    def run():
        h, m = rnn(x, times, return_memory=True)
        loss = (h * w_h).sum() + (m * w_c).sum()
        return [h, m, *torch.autograd.grad(loss, [x, *rnn.parameters()])]

    assert rnn._kernel_ratios(L, times, x) is not None  # the kernel loop is the default here
    fused = run()
    monkeypatch.setattr(HiPPORNN, "_kernel_ratios", lambda *args: None)
    ref = run()
    for a, b in zip(fused, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(not _ext.cpp_available(), reason="the C++ LegS extension did not build")
def test_legs_kernel_loop_float32_hidden_only() -> None:
    """float32, gradient through the hidden states only (no memory output)."""
    torch.manual_seed(0)
    rnn = HiPPORNN(3, 8, measure="legs", memory_order=6)
    x = signal(B=4, L=20).float().requires_grad_(True)
    h = rnn(x)
    g = torch.autograd.grad(h[:, -1].sum(), [x, *rnn.parameters()])
    ref64 = HiPPORNN(3, 8, measure="legs", memory_order=6).double()
    ref64.load_state_dict(rnn.state_dict())
    x64 = x.detach().double().requires_grad_(True)
    h64 = ref64(x64)
    g64 = torch.autograd.grad(h64[:, -1].sum(), [x64, *ref64.parameters()])
    torch.testing.assert_close(h, h64.float(), rtol=1e-5, atol=1e-6)
    for a, b in zip(g, g64, strict=True):
        torch.testing.assert_close(a, b.float(), rtol=1e-4, atol=1e-5)


def test_legs_without_extension_uses_dense_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """No C++ extension (e.g. the build failed): LegS falls back to the dense/scan paths."""
    monkeypatch.setitem(_ext._state, "lib", None)  # as if the build had failed
    rnn = HiPPORNN(3, 6, measure="legs", memory_order=5)
    x = signal(B=2, L=7).float()
    assert rnn._kernel_ratios(7, None, x) is None
    assert rnn(x).shape == (2, 7, 6)


def test_shared_timestamps_keep_their_gradient():
    torch.manual_seed(0)
    rnn = HiPPORNN(2, 8, measure="legs", timestamped=True).double()
    x = torch.randn(3, 6, 2, dtype=torch.float64)
    times = (torch.arange(6, dtype=torch.float64) * 0.01).expand(3, 6).clone().requires_grad_()
    rnn(x, times)[:, -1].sum().backward()
    assert times.grad is not None and times.grad.abs().sum() > 0
