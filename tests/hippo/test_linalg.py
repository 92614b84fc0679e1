"""hippo.linalg.solve: torch.linalg.solve's result, without MKL's batched-LU race."""

import subprocess
import sys
import textwrap

import pytest
import torch

from hippo.linalg import solve


@pytest.mark.parametrize("threads", [1, 2], ids=["one-thread", "matrix-by-matrix"])
def test_solve_broadcasts_and_differentiates_like_torch(threads, monkeypatch) -> None:
    # with more than one thread solve() loops over the batch: pretend to have two (the real
    # count stays as it is, so the MKL race is not armed)
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    g = torch.Generator().manual_seed(0)
    A = (torch.randn(3, 1, 20, 20, dtype=torch.float64, generator=g) + 8 * torch.eye(20)).requires_grad_()
    B = torch.randn(1, 4, 20, 2, dtype=torch.float64, generator=g, requires_grad=True)
    X = solve(A, B)
    ref = torch.linalg.solve(A, B)
    assert X.shape == (3, 4, 20, 2)
    assert torch.allclose(X, ref, atol=1e-12)
    grads = torch.autograd.grad(X.square().sum(), (A, B))
    ref_grads = torch.autograd.grad(ref.square().sum(), (A, B))
    for got, want in zip(grads, ref_grads, strict=True):
        assert torch.allclose(got, want, atol=1e-10)
    assert torch.allclose(solve(A[0, 0], B[0, 0]), torch.linalg.solve(A[0, 0], B[0, 0]))
    # one A for the whole batch, broadcast or expanded: factored once, same answer
    one = A[0, 0].detach()
    for shared in (one, one.expand(3, 4, 20, 20)):
        assert torch.allclose(solve(shared, B), torch.linalg.solve(one, B), atol=1e-12)
    shared_grad = torch.autograd.grad(solve(A[0, 0], B).sum(), A)[0]
    assert torch.allclose(shared_grad, torch.autograd.grad(torch.linalg.solve(A[0, 0], B).sum(), A)[0],
                          atol=1e-10)
    # B of A's batch shape is a (N, K) matrix here, never a batch of vectors (torch's reading)
    square = torch.randn(4, 4, 4, dtype=torch.float64, generator=g) + 8 * torch.eye(4)
    rhs = torch.randn(4, 4, dtype=torch.float64, generator=g)
    assert solve(square, rhs).shape == (4, 4, 4)
    assert torch.allclose(square @ solve(square, rhs), rhs.expand(4, 4, 4))
    for a, b in ((A[0, 0], B[0, 0, :, 0]), (A[0, 0, :, :3], B[0, 0]), (A[0, 0], B[0, 0, :5])):
        with pytest.raises(ValueError, match=r"A must be \(\.\.\., N, N\) and B \(\.\.\., N, K\)"):
            solve(a, b)


def test_batched_solves_survive_set_num_threads() -> None:
    # In its own process: torch.set_num_threads(2) is what arms the MKL race (pytorch#141358),
    # and a lost race can hang, so a timeout turns that into a failure.
    script = textwrap.dedent("""
        import torch
        from hippo import legs_step_dense
        from hippo.linalg import solve
        from hippo.ssm import dense_discretize
        from hippo.transition import transition
        torch.set_num_threads(2)
        A = torch.randn(2, 256, 256, dtype=torch.float64) + 30 * torch.eye(256)
        B = torch.randn(2, 256, 3, dtype=torch.float64)
        assert (A @ solve(A, B) - B).abs().max() < 1e-10
        c, f = torch.randn(2, 256, dtype=torch.float64), torch.randn(2, dtype=torch.float64)
        assert torch.isfinite(legs_step_dense(c, f, 0.5)).all()
        Am, Bm = transition("legs", 256)
        Ad, Bd = dense_discretize(Am.double(), Bm.double(), torch.tensor([0.1, 0.01], dtype=torch.float64))
        assert Ad.shape == (2, 256, 256) and torch.isfinite(Ad).all()
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "DLASWP" not in done.stderr and done.stdout.strip() == "ok"
