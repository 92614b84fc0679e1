"""Reconstruction from coefficients, and the function-approximation driver."""

import json
import math

import pytest
import torch

from hippo.funcapprox import approximate_function, bandlimited_noise, main
from hippo.project import project
from hippo.reconstruct import reconstruct


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
