"""Deep-SSM kernels (hippo.ssm), the shared FFT convolution (hippo.fftconv) and the selective
scan (hippo.scan): kernels against their recurrences, inits against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hippo import discretize, scan, transition
from hippo.fftconv import causal_conv, causal_conv_fft, kernel_spectrum
from hippo.scan import selective_scan
from hippo.ssm import (
    dense_discretize,
    dense_kernel,
    dense_recurrence,
    diag_kernel,
    diag_recurrence,
    legs_normal_part,
    s4d_init,
)

F64, F32 = torch.float64, torch.float32


def _rand(*shape, seed=0, dtype=F64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ---- FFT convolution ---------------------------------------------------------------------
def _direct_conv(u, k):
    L = u.shape[-1]
    out = torch.zeros(torch.broadcast_shapes(u.shape[:-1], k.shape[:-1]) + (L,), dtype=u.dtype)
    for i in range(L):
        for m in range(min(i + 1, k.shape[-1])):
            out[..., i] += k[..., m] * u[..., i - m]
    return out


@pytest.mark.parametrize("ushape,kshape", [((3, 4, 17), (4, 17)), ((17,), (17,)),
                                           ((2, 1, 17), (5, 9)), ((2, 3, 4, 17), (4, 17))])
@pytest.mark.parametrize("block", [1, None])
def test_causal_conv_equals_direct(ushape, kshape, block):
    u, k = _rand(*ushape), _rand(*kshape, seed=1)
    ref = _direct_conv(u, k)
    L = u.shape[-1]
    got = causal_conv_fft(u, kernel_spectrum(k, L), block_bytes=block)
    assert got.shape == ref.shape
    assert (got - ref).abs().max() < 1e-12
    assert (causal_conv(u, k) - ref).abs().max() < 1e-12


@pytest.mark.parametrize("L", [1, 2, 17, 182])
def test_causal_conv_time_dim_broadcast_and_gradients(L):
    # time in the middle (the deep models' (B, L, H) layout), a per-series kernel and a shared
    # one, a kernel longer than L; against the direct sum, values and gradients (gradcheck)
    u = _rand(2, L, 3)
    for k in (_rand(3, L, seed=1), _rand(2, 3, L, seed=2), _rand(3, L + 4, seed=3)):
        ref = _direct_conv(u.transpose(1, 2), k).transpose(1, 2)
        got = causal_conv(u, k, dim=1)
        assert got.shape == ref.shape and got.is_contiguous()
        assert (got - ref).abs().max() < 1e-12
    a = _rand(2, min(L, 9), 3).requires_grad_()
    for k in (_rand(3, min(L, 9), seed=1), _rand(1, 3, 5, seed=2), _rand(2, 1, 12, seed=3)):
        kk = k.requires_grad_()
        assert torch.autograd.gradcheck(lambda x, y: causal_conv(x, y, dim=1), (a, kk))
    with pytest.raises(ValueError, match="dim"):
        causal_conv(u, _rand(3, L), dim=3)


def test_fft_size():
    from hippo.fftconv import fft_size

    for m in range(1, 2000):
        n = fft_size(m)
        assert n >= m
        r = n
        for p in (2, 3):
            while r % p == 0:
                r //= p
        assert r == 1
        assert not any(fft_size(j) == j for j in range(m, n)) or n == m
    assert fft_size(363) == 384  # 2L - 1 at L = 182


def test_causal_conv_gradients_and_half():
    u, k = _rand(2, 3, 11).requires_grad_(), _rand(3, 11, seed=1).requires_grad_()
    torch.autograd.gradcheck(lambda a, b: causal_conv(a, b), (u, k))
    h = causal_conv(u.detach().half(), k.detach().half())
    assert h.dtype == torch.half and torch.allclose(h.double(), _direct_conv(u, k).detach(),
                                                    atol=5e-2, rtol=1e-2)


# ---- initialisations ---------------------------------------------------------------------
def test_legs_normal_part_is_minus_half_plus_skew():
    normal, P = legs_normal_part(10)
    S = normal + 0.5 * torch.eye(10, dtype=F64)
    assert torch.allclose(S, -S.T, atol=1e-12)
    # the convention of hippo.transition: A = normal - P P^T has eigenvalues -1..-N
    A, _ = transition("legs", 10)
    assert torch.allclose(normal - P[:, None] * P[None, :], A)


@pytest.mark.parametrize("N", [8, 64])
def test_s4d_legs_eigenvalues_match_numpy(N):
    A, B = s4d_init("legs", N, B_clip=None)
    Aleg, Bleg = transition("legs", N)
    P = np.sqrt(np.arange(N) + 0.5)
    lam = np.linalg.eigvals(Aleg.numpy() + np.outer(P, P))  # independent: general eig
    pos = np.sort(lam[lam.imag > 0].imag)
    assert A.shape == (N // 2,) and np.allclose(A.real.numpy(), -0.5)
    assert np.allclose(A.imag.numpy(), pos, atol=1e-8)
    # B = V^H B_legs: together with the conjugate half it reconstructs |B_legs|^2
    assert abs(2 * (B.abs() ** 2).sum().item() - (Bleg ** 2).sum().item()) < 1e-6 * N * N


def test_s4d_legs_b_is_clipped_as_s4():
    """s4's nplr('legs', N, B_clip=2.0) clips Im(V^H B) to [-2, 2]; the real part is kept.
    At N = 64 s4's B has sum |B|^2 = 74.87 (unclipped: N^2 / 2 = 2048, max |B| 40.75)."""
    exact = s4d_init("legs", 64, B_clip=None)[1]
    A, B = s4d_init("legs", 64)
    assert torch.equal(A, s4d_init("legs", 64, B_clip=None)[0])
    assert B.imag.abs().max().item() == pytest.approx(2.0) and exact.imag.abs().max() > 40
    assert torch.equal(B.real, exact.real)
    assert torch.equal(B.imag, exact.imag.clamp(-2, 2))
    assert (B.abs() ** 2).sum().item() == pytest.approx(74.8735, abs=1e-3)
    assert s4d_init("legs", 64, B_clip=0.5)[1].imag.abs().max().item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="B_clip"):
        s4d_init("legs", 8, B_clip=0.0)


def test_s4d_closed_form_inits():
    N = 16
    n = np.arange(N // 2)
    A, B = s4d_init("lin", N)
    assert np.allclose(A.numpy(), -0.5 + 1j * np.pi * n) and torch.all(B == 1)
    A, _ = s4d_init("inv", N)
    assert np.allclose(A.numpy(), -0.5 + 1j * (N / np.pi) * (N / (2 * n + 1) - 1))
    A, _ = s4d_init("real", N)
    assert np.allclose(A.numpy(), -(n + 1.0))
    with pytest.raises(ValueError):
        s4d_init("lin", 7)
    with pytest.raises(ValueError):
        s4d_init("nope", 8)


# ---- diagonal kernel vs recurrence -------------------------------------------------------
def _diag_params(H, N, dtype, seed=0):
    A, B = s4d_init("legs", N)
    cd = torch.complex128 if dtype == F64 else torch.complex64
    A = A.to(cd).expand(H, -1).contiguous()
    B = B.to(cd).expand(H, -1).contiguous()
    C = torch.complex(_rand(H, N // 2, seed=seed, dtype=dtype), _rand(H, N // 2, seed=seed + 1,
                                                                     dtype=dtype))
    dt = torch.exp(torch.empty(H, dtype=dtype).uniform_(math.log(1e-3), math.log(1e-1),
                                                        generator=torch.Generator().manual_seed(seed)))
    return A, B, C, dt


@pytest.mark.parametrize("method", ["zoh", "bilinear"])
@pytest.mark.parametrize("dtype,tol", [(F64, 1e-10), (F32, 1e-4)])
def test_diag_kernel_equals_recurrence(method, dtype, tol):
    H, N, L = 4, 16, 200
    A, B, C, dt = _diag_params(H, N, dtype)
    u = _rand(3, H, L, seed=5, dtype=dtype)
    K = diag_kernel(A, B, C, dt, L, method)
    y_conv = causal_conv(u, K)
    y_rec = diag_recurrence(A, B, C, dt, u, method)
    err = (y_conv - y_rec).abs().max() / y_rec.abs().max()
    assert err < tol, err


def test_diag_kernel_per_series_dt():
    H, N, L = 3, 8, 40
    A, B, C, dt = _diag_params(H, N, F64)
    scale = torch.tensor([1.0, 2.0])
    K = diag_kernel(A, B, C, dt * scale[:, None], L)
    assert K.shape == (2, H, L)
    assert torch.allclose(K[1], diag_kernel(A, B, C, 2 * dt, L))


# ---- dense (LSSL) kernel vs recurrence ---------------------------------------------------
@pytest.mark.parametrize("method", ["bilinear", "zoh"])
def test_dense_discretize_matches_hippo_discretize(method):
    A, B = transition("legs", 6)
    dt = torch.tensor([0.01, 0.3], dtype=F64)
    Ad, Bd = dense_discretize(A, B, dt, method)
    for i in range(2):
        ref = discretize(A, B, float(dt[i]), method)
        assert torch.allclose(Ad[i], ref[0], atol=1e-12) and torch.allclose(Bd[i], ref[1],
                                                                           atol=1e-12)


@pytest.mark.parametrize("dtype,tol", [(F64, 1e-10), (F32, 1e-4)])
def test_dense_legs_kernel_equals_recurrence(dtype, tol):
    H, N, L = 3, 32, 300
    A, B = (m.to(dtype) for m in transition("legs", N))
    C = _rand(H, N, seed=2, dtype=dtype)
    dt = torch.tensor([1e-3, 1e-2, 1e-1], dtype=dtype)
    u = _rand(2, H, L, seed=3, dtype=dtype)
    y_conv = causal_conv(u, dense_kernel(A, B, C, dt, L))
    # independent reference in float64 with hippo.discretize
    y_ref = torch.zeros(2, H, L, dtype=F64)
    for h in range(H):
        Ad, Bd = discretize(A.double(), B.double(), float(dt[h]), "bilinear")
        x = torch.zeros(2, N, dtype=F64)
        for k in range(L):
            x = x @ Ad.T + u[:, h, k, None].double() * Bd
            y_ref[:, h, k] = x @ C[h].double()
    err = (y_conv.double() - y_ref).abs().max() / y_ref.abs().max()
    assert err < tol, err
    y_rec = dense_recurrence(A, B, C, dt, u)
    assert (y_rec.double() - y_ref).abs().max() / y_ref.abs().max() < tol


# ---- selective scan ----------------------------------------------------------------------
def _scan_inputs(dtype, Bt=2, D=3, N=4, L=45, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(Bt, D, L, generator=g, dtype=dtype)
    delta = torch.nn.functional.softplus(torch.randn(Bt, D, L, generator=g, dtype=dtype))
    A = -torch.arange(1, N + 1, dtype=dtype).expand(D, N).contiguous()
    B = torch.randn(Bt, N, L, generator=g, dtype=dtype)
    C = torch.randn(Bt, N, L, generator=g, dtype=dtype)
    return [t.requires_grad_() for t in (u, delta, A, B, C)]


@pytest.mark.parametrize("zoh_b", [False, True])
@pytest.mark.parametrize("scan", ["fast", "chunked-1", "chunked-7", "chunked-16", "chunked-64"])
@pytest.mark.parametrize("dtype,tol", [(F64, 1e-10), (F32, 1e-4)])
def test_scans_equal_sequential_values_and_gradients(scan, dtype, tol, zoh_b):
    args = _scan_inputs(dtype)
    mode, _, chunk = scan.partition("-")
    x0 = torch.randn(2, 3, 4, dtype=dtype, generator=torch.Generator().manual_seed(5),
                     requires_grad=True)
    ys, xs = selective_scan(*args, mode="sequential", return_state=True, zoh_b=zoh_b, state=x0)
    yc, xc = selective_scan(*args, mode=mode, chunk=int(chunk or 32), return_state=True,
                            zoh_b=zoh_b, state=x0)
    scale = ys.abs().max()
    assert (yc - ys).abs().max() / scale < tol and (xc - xs).abs().max() / xs.abs().max() < tol
    # gradients through the outputs and the final state, to every input and the initial state
    w, v = torch.randn_like(ys), torch.randn_like(xs)
    gs = torch.autograd.grad((ys * w).sum() + (xs * v).sum(), [*args, x0])
    gc = torch.autograd.grad((yc * w).sum() + (xc * v).sum(), [*args, x0])
    for a, b in zip(gs, gc, strict=True):
        assert (a - b).abs().max() / a.abs().max() < tol


needs_cpp = pytest.mark.skipif(not scan.compiled_applies(torch.zeros(1)),
                               reason="the C++ library does not build here")


@needs_cpp
@pytest.mark.parametrize("zoh_b", [False, True])
@pytest.mark.parametrize("L", [1, 2, 37, 1000])
@pytest.mark.parametrize("N", [16, 5])
@pytest.mark.parametrize("dtype,tol", [(F64, 1e-10), (F32, 1e-5)])
def test_compiled_scan_equals_autograd_reference(dtype, tol, N, L, zoh_b):
    # N = 16: a template instance of the kernel; N = 5: its generic path. The reference is the
    # autograd loop in float64 on the same inputs (in float32 the compiled scan must be as close
    # to it as float32 arithmetic allows), from a non-zero state, through y and the last state.
    args = _scan_inputs(dtype, Bt=3, D=4, N=N, L=L, seed=L)
    g = torch.Generator().manual_seed(7)
    x0 = torch.randn(3, 4, N, dtype=dtype, generator=g).requires_grad_()
    ref = [t.detach().double().requires_grad_() for t in (*args, x0)]
    ys, xs = selective_scan(*ref[:5], mode="sequential", return_state=True, zoh_b=zoh_b,
                            state=ref[5])
    yc, xc = selective_scan(*args, mode="compiled", return_state=True, zoh_b=zoh_b, state=x0)
    assert yc.dtype == dtype and xc.dtype == dtype
    assert (yc.double() - ys).abs().max() / ys.abs().max() < tol
    assert (xc.double() - xs).abs().max() / xs.abs().max() < tol
    w = torch.randn(ys.shape, dtype=F64, generator=g)
    v = torch.randn(xs.shape, dtype=F64, generator=g)
    gs = torch.autograd.grad((ys * w).sum() + (xs * v).sum(), ref)
    gc = torch.autograd.grad((yc * w.to(dtype)).sum() + (xc * v.to(dtype)).sum(), [*args, x0])
    for name, a, b in zip(("u", "delta", "A", "B", "C", "x0"), gs, gc, strict=True):
        assert b.dtype == dtype and b.shape == a.shape, name
        assert (b.double() - a).abs().max() / a.abs().max() < tol, name


@needs_cpp
def test_compiled_scan_is_the_cpu_default_and_gradchecks():
    args = [t.detach()[..., :9].clone().requires_grad_() if t.ndim == 3 else t
            for t in _scan_inputs(F64)]
    assert scan.resolve_mode("auto", *args) == "compiled"
    assert scan.resolve_mode("auto", args[0].half()) == "fast"
    x0 = torch.randn(2, 3, 4, dtype=F64, requires_grad=True)
    for zoh_b in (False, True):
        assert torch.autograd.gradcheck(
            lambda *a, z=zoh_b: selective_scan(*a[:5], state=a[5], mode="compiled", zoh_b=z,
                                               return_state=True), (*args, x0))


@needs_cpp
def test_compiled_scan_edge_cases():
    u, delta, A, B, C = (t.detach() for t in _scan_inputs(F32))
    with pytest.raises(ValueError, match="compiled"):
        selective_scan(u.double(), delta, A, B, C, mode="compiled")
    # zero length: y is empty and the state passes through
    x0 = torch.randn(2, 3, 4)
    y, x = selective_scan(u[..., :0], delta[..., :0], A, B[..., :0], C[..., :0], state=x0,
                          mode="compiled", return_state=True)
    assert y.shape == (2, 3, 0) and torch.equal(x, x0)
    # non-contiguous inputs (B and C as Mamba's x_proj gives them: transposed views)
    Bt = B.transpose(1, 2).contiguous().transpose(1, 2)
    ref = selective_scan(u, delta, A, B, C, mode="sequential")
    got = selective_scan(u.transpose(0, 1).contiguous().transpose(0, 1), delta, A, Bt, C,
                         mode="compiled")
    assert (got - ref).abs().max() / ref.abs().max() < 1e-5
    # no gradient wanted: nothing saved, same values
    with torch.no_grad():
        assert torch.equal(selective_scan(u, delta, A, B, C, mode="compiled"),
                           selective_scan(u, delta, A, B, C, mode="compiled"))


def test_fast_scan_gradcheck():
    args = [t.detach()[..., :9].clone().requires_grad_() if t.ndim == 3 else t
            for t in _scan_inputs(F64)]
    for zoh_b in (False, True):
        assert torch.autograd.gradcheck(
            lambda *a, z=zoh_b: selective_scan(*a, mode="fast", zoh_b=z), args)


@pytest.mark.parametrize("dtype,tol", [(F64, 1e-12), (F32, 2e-6)])
def test_zoh_gain_derivative_near_zero(dtype, tol):
    # phi'(z) = sum_k k z^(k-1) / (k+1)!, summed in float64 far past convergence (|z| <= 1),
    # on both sides of the switch between the series and the closed form
    z = torch.tensor([s * m for m in (1e-8, 1e-5, 9.9e-5, 1.01e-4, 1e-3, 9.9e-3, 1.01e-2, 0.05,
                                      0.199, 0.201, 0.5, 1.0) for s in (1, -1)], dtype=F64)
    ref = sum(k * z ** (k - 1) / float(math.factorial(k + 1)) for k in range(1, 30))
    got = scan._dphi(z.to(dtype)).double()
    assert ((got - ref).abs() / ref.abs()).max() < tol


def test_scan_state_continues_a_sequence():
    u, delta, A, B, C = (t.detach() for t in _scan_inputs(F64))
    y, x = selective_scan(u, delta, A, B, C, return_state=True)
    y1, x1 = selective_scan(u[..., :20], delta[..., :20], A, B[..., :20], C[..., :20],
                            return_state=True)
    y2 = selective_scan(u[..., 20:], delta[..., 20:], A, B[..., 20:], C[..., 20:], state=x1)
    assert torch.allclose(torch.cat([y1, y2], -1), y, atol=1e-12)


def test_scan_matches_explicit_formula():
    # independent check of one step: Euler B, and ZOH B = (exp(dA) - 1)/A B
    u, delta, A, B, C = (t.detach()[..., :1] if t.ndim == 3 else t.detach()
                         for t in _scan_inputs(F64))
    for zoh_b in (False, True):
        y = selective_scan(u, delta, A, B, C, zoh_b=zoh_b)[..., 0]
        d = delta[..., 0, None]
        gain = (torch.exp(d * A) - 1) / A if zoh_b else d
        x = gain * B[:, None, :, 0] * u[..., 0, None]
        assert torch.allclose(y, (x * C[:, None, :, 0]).sum(-1), atol=1e-12)
