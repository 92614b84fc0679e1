"""GRU-ODE as the Neural CDE paper runs it (Kidger et al. 2020, Table 1; patrick-kidger/NeuralCDE,
``experiments/models/vector_fields.py`` ``GRU_ODE`` inside ``metamodel.ContinuousRNNConverter``).

A CDE driven by the same path X as the Neural CDE (:func:`baselines.cde_path.cde_coefficients`:
``[time, values]``, knots at 0, 1, ..., L-1), whose state is ``z = [x, h]`` with ``z_0 = 0``::

    dx = dX                                     # x tracks the path: x(s) = X(s) - X(0)
    dh = (1 - u) * (g - h) dX_time              # only the time channel drives h
    r = sigmoid(W_r x + U_r h),  u = sigmoid(W_z x + U_z h),  g = tanh(W_h x + U_h (r * h))

with h clamped to [-1, 1] inside the vector field (as the reference), and the classifier reading
all of ``z`` (``Linear(C + 1 + H, classes)``) at each series' last observed knot. It is solved
with the experiments' default, fixed-step ``rk4`` (torchdiffeq's 3/8 rule) at step 1, one step
per knot interval, through autograd; the path's derivative at every stage time is computed
before the loop. The tests check the solve against ``torchcde.cdeint`` with the same vector
field. Training adds the experiments' penalty ``0.03 * sum ||p||`` over the vector field.

Deviations, stated: a Hermite spline with backward differences where the reference uses a
natural cubic spline (as for the Neural CDE), and the read-out at the last observed knot where
the reference reads at the series' original end (the state is only carried on by the path
between them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor, nn

from bench.batch import SequenceBatch
from bench.models.base import check_sizes, last_valid, observed_lengths, weight_norm_penalty

from .cde_path import cde_coefficients
from .common import check_penalty

# torchdiffeq's "rk4" (rk4_alt_step_func, the 3/8 rule): stage times and weights
_RK4_NODES = (0.0, 1 / 3, 2 / 3, 1.0)
_RK4_WEIGHTS = (1 / 8, 3 / 8, 3 / 8, 1 / 8)


def path_derivative(coeffs: Tensor, fractions: tuple[float, ...]) -> Tensor:
    """dX/ds at ``k + f`` for every knot interval k and fraction f of it.

    ``coeffs`` ``(B, L-1, 4C)``: torchcde's cubic coefficients ``[a, b, two_c, three_d]`` of
    each interval (``X(k + f) = a + b f + c f^2 + d f^3``) -> ``(B, L-1, len(fractions), C)``.
    """
    _, b, two_c, three_d = coeffs.unsqueeze(2).chunk(4, dim=-1)
    f = coeffs.new_tensor(fractions).view(1, 1, -1, 1)
    return b + (two_c + three_d * f) * f


class GRUODEField(nn.Module):
    """The reference's ``_GRU_ODE``: ``(x (B, C'), h (B, H)) -> dh/d(time) (B, H)``."""

    def __init__(self, path_channels: int, hidden_size: int):
        super().__init__()
        self.W_r = nn.Linear(path_channels, hidden_size, bias=False)
        self.W_z = nn.Linear(path_channels, hidden_size, bias=False)
        self.W_h = nn.Linear(path_channels, hidden_size, bias=False)
        self.U_r = nn.Linear(hidden_size, hidden_size)
        self.U_z = nn.Linear(hidden_size, hidden_size)
        self.U_h = nn.Linear(hidden_size, hidden_size)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        h = h.clamp(-1, 1)
        r = torch.sigmoid(self.W_r(x) + self.U_r(h))
        u = torch.sigmoid(self.W_z(x) + self.U_z(h))
        g = torch.tanh(self.W_h(x) + self.U_h(r * h))
        return (1 - u) * (g - h)


class GRUODE(nn.Module):
    """GRU-ODE classifier: ``forward(batch)`` -> logits ``(B, num_classes)``.

    ``hidden_size`` 47 is the experiments' setting (``run_all``: ``gruode`` hidden 47).
    ``weight_penalty`` scales the training penalty on the vector field (0.03; 0 turns it off).
    Reads ``extras["cde_coeffs"]`` when the data module supplies it, else computes it.
    """

    code_version = "1"
    batch_extras: ClassVar[dict[str, Callable]] = {"cde_coeffs": cde_coefficients}

    def __init__(self, num_inputs: int, num_classes: int, hidden_size: int = 47,
                 weight_penalty: float = 0.03):  # fmt: skip
        super().__init__()
        check_sizes("GRUODE", num_inputs=num_inputs, num_classes=num_classes, hidden_size=hidden_size)
        self.weight_penalty = check_penalty("GRUODE", weight_penalty)
        self.path_channels = num_inputs + 1  # time is the path's first channel
        self.func = GRUODEField(self.path_channels, hidden_size)
        self.classifier = nn.Linear(self.path_channels + hidden_size, num_classes)
        self.hidden_size = hidden_size
        self.config = {
            "num_inputs": num_inputs,
            "num_classes": num_classes,
            "hidden_size": hidden_size,
            "solver": "rk4",
            "step_size": 1.0,
            "interpolation": "hermite_cubic_backward_differences",
            "inputs": "path [times, values]",
            "readout": "[x, h] at the last observed knot",
            "weight_penalty": self.weight_penalty,
        }

    def regularization(self) -> Tensor:
        """``weight_penalty * sum ||p||`` over the vector field, added to the training loss."""
        return weight_norm_penalty(self.func, self.weight_penalty)

    def coefficients(self, batch: SequenceBatch) -> Tensor:
        """The batch's spline coefficients ``(B, L-1, 4 (C + 1))``: precomputed or computed here."""
        coeffs = batch.extras.get("cde_coeffs")
        if coeffs is None:
            coeffs = cde_coefficients(batch.values, batch.times, batch.mask, batch.lengths)
        expected = (batch.values.shape[0], batch.values.shape[1] - 1, 4 * self.path_channels)
        if tuple(coeffs.shape) != expected:
            raise ValueError(f"GRUODE: extras['cde_coeffs'] has shape {tuple(coeffs.shape)}; expected {expected}")
        return coeffs.to(batch.values.dtype)

    def states(self, coeffs: Tensor, end: int) -> Tensor:
        """``z = [x, h]`` at knots ``0 .. end-1``: ``(B, end, C' + H)``, rk4 at step 1."""
        derivative = path_derivative(coeffs[:, : end - 1], _RK4_NODES)  # (B, end-1, 4, C')
        c = self.path_channels
        z = coeffs.new_zeros(coeffs.shape[0], c + self.hidden_size)
        out = [z]

        def field(z: Tensor, dX: Tensor) -> Tensor:
            x, h = z[:, :c], z[:, c:]
            return torch.cat([dX, self.func(x, h) * dX[:, :1]], dim=-1)

        for k in range(end - 1):
            dX = derivative[:, k].unbind(1)
            k1 = field(z, dX[0])
            k2 = field(z + k1 / 3, dX[1])
            k3 = field(z + (k2 - k1 / 3), dX[2])
            k4 = field(z + (k1 - k2 + k3), dX[3])
            z = z + (k1 + 3 * (k2 + k3) + k4) * _RK4_WEIGHTS[0]
            out.append(z)
        return torch.stack(out, dim=1)

    def forward(self, batch: SequenceBatch) -> Tensor:
        if batch.values.shape[1] < 2:
            raise ValueError("GRUODE: sequences need at least 2 steps to build a spline path")
        coeffs = self.coefficients(batch)
        lengths = observed_lengths(batch.mask, batch.lengths)
        end = max(int(lengths.max()), 2)  # solve only as far as the batch's last observed knot
        return self.classifier(last_valid(self.states(coeffs, end), lengths))
