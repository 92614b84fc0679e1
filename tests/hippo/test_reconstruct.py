"""Reconstruction from coefficients, and the function-approximation driver."""

import json
import math

import pytest
import torch

from hippo.funcapprox import approximate_function, bandlimited_noise, main
from hippo.project import project
from hippo.reconstruct import basis, reconstruct


def _smooth(L):
    t = torch.linspace(0, 1, L, dtype=torch.float64)
    return torch.sin(2 * math.pi * 4 * t) + 0.5 * torch.cos(2 * math.pi * 9 * t)


@pytest.mark.parametrize("measure", ["legs", "legt", "lmu"])
def test_smooth_signal_error_falls_with_N(measure):
    L = 20000
    x = _smooth(L)
    kw = {} if measure == "legs" else {"dt": 1 / (L - 1)}
    errs = []
    for N in (8, 16, 32):
        c = project(x, measure, N, output="last", **kw)
        errs.append(((reconstruct(c, measure, L) - x) ** 2).mean().item())
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < (1e-3 if measure == "legs" else 1e-2)


def test_laguerre_reconstruction_needs_horizon_and_works():
    L = 4000
    t = torch.linspace(0, 1, L, dtype=torch.float64)
    x = torch.sin(6 * t) + 0.5 * torch.cos(15 * t)
    with pytest.raises(ValueError, match="horizon"):
        reconstruct(torch.zeros(8, dtype=torch.float64), "lagt", 10)
    errs = []
    for N in (8, 32):
        c = project(x, "tlagt", N, dt=20 / L, output="last")
        r = reconstruct(c, "tlagt", L, horizon=20.0)
        errs.append(((r - x)[-L // 2:] ** 2).mean().item())
    assert errs[1] < errs[0] and errs[1] < 1e-3


def test_bandlimited_noise():
    a, b = bandlimited_noise(4096, 10, seed=3), bandlimited_noise(4096, 10, seed=3)
    assert (a == b).all() and abs((a**2).mean() - 1) < 1e-12
    spec = abs(__import__("numpy").fft.rfft(a))
    assert spec[11:].max() < 1e-9 * spec.max()


def test_approximate_function_small():
    res = approximate_function("legs", 64, 20000, checkpoints=(1000,), freq=5)
    assert set(res.mse_at) == {1000, 20000} and res.mse == res.mse_at[20000]
    assert res.mse < 1e-3 and res.steps_per_s > 0
    lt = approximate_function("legt", 64, 5000, checkpoints=(), freq=5)
    assert lt.mse < 0.05


def test_cli_json_and_errors(capsys):
    main(["--N", "32", "--length", "5000", "--checkpoints", "1000", "--freq", "3", "--json"])
    data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert data["measure"] == "legs" and data["length"] == 5000 and "1000" in data["mse_at"]
    with pytest.raises(SystemExit, match="invalid choice: 'nope'"):
        main(["--measure", "nope"])
    with pytest.raises(SystemExit, match="freq must be in"):
        main(["--length", "100", "--freq", "80"])


def _fout_window(fn, N, per_window=2000, windows=3):
    """fout memory of fn over ``windows`` windows (theta = 1) and the direct projection of the
    last window [0, 1] onto the reconstruction basis (trapezoid rule); returns (c, c_direct,
    signal on the last window)."""
    L = windows * per_window + 1
    x = fn(torch.linspace(1 - windows, 1, L, dtype=torch.float64))
    c = project(x, "fout", N, dt=1 / per_window, output="last")
    xw = x[-(per_window + 1):]
    basis_matrix = basis("fout", N, torch.linspace(0, 1, per_window + 1, dtype=torch.float64))
    w = torch.full((per_window + 1,), 1 / per_window, dtype=torch.float64)
    w[0] /= 2
    w[-1] /= 2
    return c, (xw * w) @ basis_matrix, xw


def test_fout_tracks_the_window_projection():
    # A window that is not periodic: the memory must follow the projection of the last window.
    # With the naive endpoint estimate f(t - theta) ~ p^T c (A = W - p p^T, B = p) the error
    # stayed at MSE ~0.13 for every N; see the fout notes in hippo.transition.
    def fn(t):
        return torch.sin(2 * math.pi * 1.3 * t + 0.4)
    coef_errs, mses, direct_mses = [], [], []
    for N in (15, 31, 63):
        c, cd, xw = _fout_window(fn, N)
        coef_errs.append((c - cd).abs().max().item())
        mses.append(((reconstruct(c, "fout", xw.numel()) - xw) ** 2).mean().item())
        direct_mses.append(((reconstruct(cd, "fout", xw.numel()) - xw) ** 2).mean().item())
    # measured: coef 4.1e-2, 2.1e-2, 1.1e-2; MSE 4.4e-3, 1.3e-3, 4.4e-4 (direct 1.1e-3 .. 2.3e-4)
    assert coef_errs[0] > coef_errs[1] > coef_errs[2] and coef_errs[2] < 2e-2
    assert mses[0] > mses[1] > mses[2] and mses[2] < 1e-3
    # the rest is Gibbs: even the best Fourier fit of a non-periodic window converges slowly
    assert all(m < 6 * d for m, d in zip(mses, direct_mses, strict=True))  # 4.0, 2.8, 2.0


def test_fout_is_exact_for_a_window_periodic_signal():
    def fn(t):
        return torch.sin(2 * math.pi * 2 * t) + 0.5 * torch.cos(2 * math.pi * 3 * t)
    c, cd, xw = _fout_window(fn, 15)
    assert (c - cd).abs().max() < 5e-3  # measured 2.3e-3 (discretisation, 2000 steps/window)
    assert ((reconstruct(c, "fout", xw.numel()) - xw) ** 2).mean() < 5e-5  # measured 1.0e-5


def test_fout_even_order_has_a_dead_last_slot():
    # The unpaired last cosine of an even order is a dead slot: order 2m = order 2m - 1 plus 0.
    x = torch.sin(torch.linspace(0, 9, 900, dtype=torch.float64))
    c15 = project(x, "fout", 15, dt=0.01, output="last")
    c16 = project(x, "fout", 16, dt=0.01, output="last")
    assert c16[-1] == 0 and torch.allclose(c16[:-1], c15, atol=1e-12)
