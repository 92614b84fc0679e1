"""Transition matrices against their closed forms, element by element."""

import math

import pytest
import torch

from hippo import MEASURES, discretize, transition

N = 7


def test_legs_closed_form_and_eigenvalues():
    A, B = transition("legs", N)
    assert A.dtype == torch.float64 and A.shape == (N, N) and B.shape == (N,)
    for n in range(N):
        assert B[n] == pytest.approx(math.sqrt(2 * n + 1))
        for k in range(N):
            want = -math.sqrt(2 * n + 1) * math.sqrt(2 * k + 1) if n > k else 0.0
            want = -(n + 1) if n == k else want
            assert A[n, k] == pytest.approx(want, abs=1e-14)
    ev = torch.linalg.eigvals(transition("legs", 32)[0])
    assert torch.allclose(ev.real.sort().values, -torch.arange(32, 0, -1, dtype=torch.float64))
    assert ev.imag.abs().max() < 1e-12


@pytest.mark.parametrize("theta", [1.0, 2.5])
def test_legt_and_lmu_closed_forms(theta):
    A, B = transition("legt", N, theta=theta)
    Al, Bl = transition("lmu", N, theta=theta)
    for n in range(N):
        sn = math.sqrt(2 * n + 1)
        assert B[n] == pytest.approx(sn / theta)
        assert Bl[n] == pytest.approx((2 * n + 1) * (-1) ** n / theta)
        for k in range(N):
            sk = math.sqrt(2 * k + 1)
            assert A[n, k] == pytest.approx(-sn * sk * (1 if n >= k else (-1) ** (n - k)) / theta)
            lmu = (2 * n + 1) * (-1 if n < k else (-1) ** (n - k + 1)) / theta
            assert Al[n, k] == pytest.approx(lmu)


def test_legt_equals_lmu_up_to_diagonal_scaling():
    A, B = transition("legt", 16, theta=3.0)
    Al, Bl = transition("lmu", 16, theta=3.0)
    n = torch.arange(16, dtype=torch.float64)
    T = torch.diag((1 - 2 * (n % 2)) / torch.sqrt(2 * n + 1))
    assert torch.allclose(T @ Al @ torch.linalg.inv(T), A, atol=1e-12)
    assert torch.allclose(T @ Bl, B, atol=1e-12)


def test_laguerre_family():
    A, B = transition("lagt", N, beta=2.0)
    for n in range(N):
        assert B[n] == 2.0
        for k in range(N):
            assert A[n, k] == (-0.5 if n == k else (-1.0 if n > k else 0.0))
    At, Bt = transition("tlagt", N, beta=0.3)
    assert torch.allclose(At, 0.35 * torch.eye(N, dtype=torch.float64) - torch.tril(torch.ones(N, N, dtype=torch.float64)))
    assert torch.allclose(Bt, torch.full((N,), 0.3, dtype=torch.float64))
    # glagt with alpha = 0, beta = 1 is the untilted Laguerre projection (tlagt, beta = 1)
    Ag, Bg = transition("glagt", N, alpha=0.0, beta=1.0)
    At1, Bt1 = transition("tlagt", N, beta=1.0)
    assert torch.allclose(Ag, At1) and torch.allclose(Bg, Bt1)


def test_fout_structure():
    A, B = transition("fout", 5, theta=2.0)
    p = torch.tensor([1, math.sqrt(2), 0, math.sqrt(2), 0], dtype=torch.float64)
    W = torch.zeros(5, 5, dtype=torch.float64)
    W[1, 2], W[2, 1], W[3, 4], W[4, 3] = 2 * math.pi, -2 * math.pi, 4 * math.pi, -4 * math.pi
    # the endpoint estimate is f(t - theta) ~ 2 p^T c - f(t): hence -2 p p^T and 2 p
    assert torch.allclose(A, (W - 2 * p[:, None] * p[None]) / 2.0)
    assert torch.allclose(B, 2 * p / 2.0)
    # even N: the unpaired last cosine is a dead slot (zero row, column and input)
    A6, B6 = transition("fout", 6)
    assert torch.equal(A6[:5, :5], transition("fout", 5)[0]) and B6[5] == 0
    assert (A6[5] == 0).all() and (A6[:, 5] == 0).all()


@pytest.mark.parametrize("m", [2, 5, 33])
def test_fout_is_the_reference_fourier_with_a_window_of_2(m):
    # state-spaces' hippo.py, measure "fourier" (order 2m): [1, sin 0 (dead), cos 1, sin 1, ...],
    # A = pi (diag(d, -1) - diag(d, 1)) - p p^T, B = p
    d = torch.stack([torch.zeros(m), torch.arange(m, dtype=torch.float64)], dim=-1).reshape(-1)[1:]
    A_ref = math.pi * (torch.diag(d, -1) - torch.diag(d, 1))
    p = torch.zeros(2 * m, dtype=torch.float64)
    p[0::2] = math.sqrt(2)
    p[0] = 1
    A_ref, B_ref = A_ref - p[:, None] * p[None], p
    # ours at order 2m - 1: [1, cos 1, sin 1, ...], the sines with the opposite sign
    order = [0] + [i for k in range(1, m) for i in (2 * k, 2 * k + 1)]
    sign = torch.tensor([1.0] + [1.0, -1.0] * (m - 1), dtype=torch.float64)
    A, B = transition("fout", 2 * m - 1, theta=2.0)
    assert torch.allclose(A, sign[:, None] * A_ref[order][:, order] * sign[None], atol=1e-12, rtol=0)
    assert torch.allclose(B, sign * B_ref[order], atol=1e-12, rtol=0)


@pytest.mark.parametrize("measure", MEASURES)
def test_every_measure_is_stable_after_discretisation(measure):
    A, B = transition(measure, 12)
    Ad, _ = discretize(A, B, 0.01, "bilinear")
    assert torch.linalg.eigvals(Ad).abs().max() <= 1 + 1e-9


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown measure 'legx'.*legs"):
        transition("legx", 4)
    with pytest.raises(ValueError, match="N must be an integer >= 1"):
        transition("legs", 0)
    with pytest.raises(ValueError, match="takes no parameter"):
        transition("legs", 4, theta=1.0)
    with pytest.raises(ValueError, match="theta"):
        transition("legt", 4, theta=0.0)
