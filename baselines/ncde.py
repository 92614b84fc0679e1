"""Neural CDE (Kidger, Morrill, Foster, Lyons, "Neural Controlled Differential Equations for
Irregular Time Series", NeurIPS 2020), with torchcde.

The path X is the Hermite cubic spline with backward differences through
``[time, values (NaN where unobserved)]``, knots at 0, 1, ..., L-1 (torchcde's default
parametrisation: the spline's own "time" is the step index, and the data's time, index or
physical, is the path's first channel). Then::

    z_0 = Linear(X(0));  dz = f(z) dX;  logits = Linear(z at the last observed knot)

with the vector field f an MLP (ReLU hidden layers, final tanh) reshaped to (H, C + 1). The CDE is
solved with fixed-step rk4 at step 1, the knot spacing (one step per sample), as in the Neural CDE
experiments, not with the default adaptive dopri5 (tens of times slower on CPU).

Two backends solve it. ``"fast"`` (:func:`baselines.fixed_step.cde_solve`): the same steps as
``torchcde.cdeint`` with torchdiffeq's fixed-grid solver, with dX/dt at every stage time computed
in one pass and a hand-written reverse pass, about 3.5x faster per training step at the
reference size. ``"torchcde"``: ``torchcde.cdeint``, the reference, and the only one for dopri5
and the adjoint. They agree to float rounding, outputs and gradients (tests/baselines).

The read-out is z at each series' last observed knot (:func:`bench.models.base.observed_lengths`),
the experiments' ``final_index``: not at the end of the tail that the data module pads by
repeating the last value. Backward differences make the spline on [k, k + 1] depend only on
samples k - 1, k, k + 1, so z there never sees that tail, and the solve stops at the batch's
last observed knot. Training adds the experiments' penalty ``0.03 * sum ||p||`` over the vector
field's parameters (:meth:`NeuralCDE.regularization`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor, nn

from bench.batch import SequenceBatch
from bench.models.base import check_sizes, last_valid, observed_lengths, weight_norm_penalty
from bench.models.registry import register_model

from .cde_path import (  # the one implementation; also public here
    batch_coefficients,
    cde_coefficients,
)
from .common import check_choice, check_penalty, mlp
from .fixed_step import cde_solve, steps_per_interval
from .references import ncde_experiments

SOLVERS = ("rk4", "midpoint", "euler", "dopri5")
BACKENDS = ("auto", "fast", "torchcde")


class _VectorField(nn.Module):
    """``f(t, z)``: ``(B, H) -> (B, H, C + 1)``, an MLP with ReLU hidden layers and a final tanh."""

    def __init__(self, hidden_size: int, path_channels: int, width: int, num_hidden_layers: int):
        super().__init__()
        self.shape = (hidden_size, path_channels)
        self.net = mlp(hidden_size, width, hidden_size * path_channels, num_hidden_layers, nn.ReLU)

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        return torch.tanh(self.net(z)).view(*z.shape[:-1], *self.shape)

    def linears(self) -> list[tuple[Tensor, Tensor]]:
        """``(weight, bias)`` of each ``nn.Linear`` of the MLP, in order (for the fast solve)."""
        return [(m.weight, m.bias) for m in self.net if isinstance(m, nn.Linear)]


@register_model("ncde", description="Neural CDE (Kidger et al. 2020): Hermite cubic path, rk4 cdeint",
                references=ncde_experiments({"hidden_size": 32, "hidden_hidden_size": 32, "num_hidden_layers": 3},
                                            paper_table=True),
                tags=("timescale", "timestamps", "missing", "throughput"))
class NeuralCDE(nn.Module):
    """Neural CDE classifier: ``forward(batch)`` -> logits ``(B, num_classes)``.

    Reference configuration (Neural CDE experiments on CharacterTrajectories, reused by the HiPPO
    paper): ``hidden_size`` 32, ``hidden_hidden_size`` 32, ``num_hidden_layers`` 3, solver
    ``rk4`` with ``step_size`` 1 (one step per sample; ``step_size`` is in knot units and ignored
    by dopri5). ``adjoint=False`` backpropagates through the solver steps directly: exact
    gradients of the discrete solve, and faster at this size. ``adjoint=True`` uses torchcde's
    adjoint, whose backward rk4 solve at step 1 is only approximate (gradients off by several
    percent on rough paths; they converge as ``step_size`` shrinks). ``weight_penalty`` scales
    the training penalty on the vector field (0.03 in the experiments; 0 turns it off). Reads
    ``extras["cde_coeffs"]`` when the data module supplies it, else computes it with
    :func:`cde_coefficients`.

    ``backend``: ``"auto"`` (default) takes ``"fast"`` wherever it applies (euler, midpoint or
    rk4; ``step_size`` 1/n; ``adjoint=False``) and ``"torchcde"`` otherwise; ``config["backend"]``
    records the choice. The fast solve treats the path as data: a path that itself requires grad
    (gradients with respect to the values) is solved by torchcde, which differentiates the spline.
    """

    # 3: read-out at the last observed knot, and the experiments' weight-norm penalty
    code_version = "3"
    # the path's coefficients, computed once per split by the data module
    batch_extras: ClassVar[dict[str, Callable]] = {"cde_coeffs": cde_coefficients}

    def __init__(
        self,
        num_inputs: int,
        num_classes: int,
        hidden_size: int = 32,
        hidden_hidden_size: int = 32,
        num_hidden_layers: int = 3,
        solver: str = "rk4",
        step_size: float = 1.0,
        adjoint: bool = False,
        backend: str = "auto",
        weight_penalty: float = 0.03,
    ):
        super().__init__()
        check_sizes(
            "NeuralCDE",
            num_inputs=num_inputs,
            num_classes=num_classes,
            hidden_size=hidden_size,
            hidden_hidden_size=hidden_hidden_size,
            num_hidden_layers=num_hidden_layers,
        )
        check_choice("NeuralCDE", "solver", solver, SOLVERS)
        if isinstance(step_size, bool) or not (
            isinstance(step_size, int | float) and 0 < step_size <= 1
        ):
            raise ValueError(
                f"NeuralCDE: step_size must be in (0, 1] (knot spacing is 1), got {step_size!r}"
            )
        check_choice("NeuralCDE", "backend", backend, BACKENDS)
        # the fast solve takes whole steps onto every knot: step_size 1/n, fixed-step solvers
        self.steps_per_knot = None if solver == "dopri5" else steps_per_interval(step_size)
        fast_ok = self.steps_per_knot is not None and not adjoint
        if backend == "auto":
            backend = "fast" if fast_ok else "torchcde"
        elif backend == "fast" and not fast_ok:
            raise ValueError(
                "NeuralCDE: backend='fast' needs solver euler, midpoint or rk4, adjoint=False and "
                f"step_size 1/n; got solver={solver!r}, adjoint={adjoint!r}, step_size={step_size!r}"
            )
        self.backend = backend
        self.weight_penalty = check_penalty("NeuralCDE", weight_penalty)
        path_channels = num_inputs + 1  # time is the first channel of the path
        self.initial = nn.Linear(path_channels, hidden_size)
        self.func = _VectorField(hidden_size, path_channels, hidden_hidden_size, num_hidden_layers)
        self.classifier = nn.Linear(hidden_size, num_classes)
        self.path_channels = path_channels
        self.solver = solver
        self.adjoint = bool(adjoint)
        # fixed-step solvers take one step per knot interval; dopri5 chooses its own steps
        self.solver_kwargs: dict = (
            {} if solver == "dopri5" else {"options": {"step_size": float(step_size)}}
        )
        self.config = {
            "num_inputs": num_inputs,
            "num_classes": num_classes,
            "hidden_size": hidden_size,
            "hidden_hidden_size": hidden_hidden_size,
            "num_hidden_layers": num_hidden_layers,
            "solver": solver,
            "step_size": None if solver == "dopri5" else float(step_size),
            "adjoint": self.adjoint,
            "backend": self.backend,
            "interpolation": "hermite_cubic_backward_differences",
            "inputs": "path [times, values]",
            "readout": "last observed knot",
            "weight_penalty": self.weight_penalty,
        }

    def regularization(self) -> Tensor:
        """``weight_penalty * sum ||p||`` over the vector field, added to the training loss."""
        return weight_norm_penalty(self.func, self.weight_penalty)

    def coefficients(self, batch: SequenceBatch) -> Tensor:
        """The batch's spline coefficients ``(B, L-1, 4 * (C + 1))``: precomputed or computed here."""
        return batch_coefficients(batch, self.path_channels, "NeuralCDE")

    def forward(self, batch: SequenceBatch) -> Tensor:
        if batch.values.shape[1] < 2:
            raise ValueError("NeuralCDE: sequences need at least 2 steps to build a spline path")
        coeffs = self.coefficients(batch)
        lengths = observed_lengths(batch.mask, batch.lengths)
        # solve only as far as the batch's last observed knot
        end = max(int(lengths.max()), 2)
        if self.backend == "fast" and not coeffs.requires_grad:  # else torchcde: see the class doc
            z0 = self.initial(coeffs[:, 0, : self.path_channels])  # X(0): interval 0's a
            z = cde_solve(self.func.linears(), z0, coeffs, end, self.solver, self.steps_per_knot)
            return self.classifier(last_valid(z, lengths))
        import torchcde  # imported by the reference path only: listing the models stays light

        X = torchcde.CubicSpline(coeffs)
        z0 = self.initial(X.evaluate(X.interval[0]))
        z = torchcde.cdeint(
            X,
            self.func,
            z0,
            X.grid_points[:end],
            adjoint=self.adjoint,
            method=self.solver,
            **self.solver_kwargs,
        )  # (B, end, H)
        return self.classifier(last_valid(z, lengths))
