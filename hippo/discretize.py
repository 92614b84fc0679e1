"""Discretisation of the linear ODE ``c' = A c + B f`` with a fixed step ``dt``.

The discrete recurrence is ``c_k = Ad c_{k-1} + Bd f_k`` (see :func:`lti_step`).

- ``forward_euler``: ``Ad = I + dt A``, ``Bd = dt B``.
- ``backward_euler``: ``Ad = (I - dt A)^-1``, ``Bd = dt (I - dt A)^-1 B``.
- ``bilinear``: ``Ad = (I - dt/2 A)^-1 (I + dt/2 A)``, ``Bd = dt (I - dt/2 A)^-1 B``.
- ``gbt`` (generalised bilinear, ``alpha`` in [0, 1]): ``Ad = (I - alpha dt A)^-1 (I + (1-alpha)
  dt A)``, ``Bd = dt (I - alpha dt A)^-1 B``; alpha = 0, 1/2, 1 give the three above.
- ``zoh`` (zero-order hold, exact for piecewise-constant f): the matrix exponential of the
  augmented block matrix ``[[A, B], [0, 0]] dt`` holds ``Ad = expm(dt A)`` in its top-left
  block and ``Bd = A^-1 (expm(dt A) - I) B`` in its top-right column, without inverting A.
"""

from __future__ import annotations

import torch

METHODS = ("forward_euler", "backward_euler", "bilinear", "gbt", "zoh")

# alpha of the GBT family for the named methods.
GBT_ALPHA = {"forward_euler": 0.0, "backward_euler": 1.0, "bilinear": 0.5}


def method_alpha(method: str, alpha: float | None = None) -> float | None:
    """The GBT alpha of ``method`` (None for zoh); validates method and alpha."""
    if method not in METHODS:
        raise ValueError(f"unknown discretisation method {method!r}; valid: {', '.join(METHODS)}")
    if method == "gbt":
        if alpha is None:
            raise ValueError("method 'gbt' needs alpha in [0, 1] (e.g. alpha=0.5 is bilinear)")
        alpha = float(alpha)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"gbt alpha must be in [0, 1], got {alpha}")
        return alpha
    if alpha is not None:
        raise ValueError(f"alpha is only used by method 'gbt', not {method!r}")
    return GBT_ALPHA.get(method)


def check_dt(dt) -> float:
    """Validate a positive, finite step size."""
    try:
        value = float(dt)
    except (TypeError, ValueError):
        raise ValueError(f"dt must be a positive number, got {dt!r}") from None
    if not (value > 0 and value < float("inf")):
        raise ValueError(f"dt must be a positive finite number, got {dt!r}")
    return value


def discretize(
    A: torch.Tensor, B: torch.Tensor, dt: float, method: str = "bilinear", alpha: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Discretise ``c' = A c + B f`` with step ``dt``.

    ``A`` (N, N), ``B`` (N,); returns ``(Ad, Bd)`` with the same shapes, dtype and device.
    ``method`` is one of :data:`METHODS`; ``alpha`` is required for (and only for) ``gbt``.
    """
    dt = check_dt(dt)
    a = method_alpha(method, alpha)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be square (N, N), got shape {tuple(A.shape)}")
    N = A.shape[0]
    if B.shape != (N,):
        raise ValueError(f"B must have shape ({N},) to match A, got {tuple(B.shape)}")
    eye = torch.eye(N, dtype=A.dtype, device=A.device)
    if method == "zoh":
        M = torch.zeros(N + 1, N + 1, dtype=A.dtype, device=A.device)
        M[:N, :N] = A * dt
        M[:N, N] = B * dt
        E = torch.linalg.matrix_exp(M)
        return E[:N, :N].contiguous(), E[:N, N].contiguous()
    if a == 0.0:  # forward Euler: no solve
        return eye + dt * A, dt * B
    lhs = eye - a * dt * A
    rhs = torch.cat([eye + (1 - a) * dt * A, (dt * B)[:, None]], dim=1)
    sol = torch.linalg.solve(lhs, rhs)
    return sol[:, :N].contiguous(), sol[:, N].contiguous()


def lti_step(c: torch.Tensor, f: torch.Tensor, Ad: torch.Tensor, Bd: torch.Tensor) -> torch.Tensor:
    """One step of the discrete LTI memory: ``c @ Ad.T + f[..., None] * Bd``.

    ``c`` (..., N), ``f`` (...,), ``Ad`` (N, N), ``Bd`` (N,) -> (..., N). Differentiable.
    """
    return c @ Ad.transpose(-1, -2) + f[..., None] * Bd
