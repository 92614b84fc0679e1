"""ODE-RNN (Rubanova, Chen, Duvenaud, "Latent ODEs for Irregularly-Sampled Time Series", NeurIPS
2019), in the setting of the Neural CDE experiments (Kidger et al. 2020) that the HiPPO paper's
CharacterTrajectories baselines reused.

Between consecutive steps t_{k-1} -> t_k the hidden state follows ``dh/dt = f(h)`` (an MLP with
tanh), solved with ONE fixed step of size ``t_k - t_{k-1}`` (``rk4``: one step per gap, as the
reference's ``odeint(..., method="rk4")`` over ``[t_{k-1}, t_k]`` does); then, where anything was
observed at t_k, a GRU cell reads ``[x_k, mask_k]``. Steps with nothing observed keep the evolved h.

The gaps differ per series, so the solver step is written here in torch with a per-series
``dt`` ``(B, 1)`` instead of calling ``torchdiffeq.odeint`` once per series: it is the same
arithmetic as torchdiffeq's fixed-grid step for the same method (``rk4`` is torchdiffeq's
3/8-rule variant), which the tests check against ``torchdiffeq.odeint``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.data.batch import SequenceBatch
from bench.models.base import check_sizes, last_valid

from .common import check_choice, gru_step, mlp

SOLVERS = ("rk4", "midpoint", "euler")


def fixed_step(f: Callable[[Tensor], Tensor], y: Tensor, dt: Tensor, method: str) -> Tensor:
    """One step of ``dy/dt = f(y)`` from y ``(B, H)`` over ``dt`` ``(B, 1)``, as torchdiffeq takes it."""
    if method == "euler":
        return y + dt * f(y)
    if method == "midpoint":
        return y + dt * f(y + 0.5 * dt * f(y))
    # torchdiffeq's "rk4": the 3/8 rule (rk4_alt_step_func)
    k1 = f(y)
    k2 = f(y + dt * k1 / 3)
    k3 = f(y + dt * (k2 - k1 / 3))
    k4 = f(y + dt * (k1 - k2 + k3))
    return y + (k1 + 3 * (k2 + k3) + k4) * dt * 0.125


class ODERNN(nn.Module):
    """ODE-RNN classifier: ``forward(batch)`` -> logits ``(B, num_classes)`` from the last valid h.

    Reference configuration (Neural CDE experiments, reused by the HiPPO paper): ``hidden_size``
    32, ``hidden_hidden_size`` 32, ``num_hidden_layers`` 3 (the ODE function is
    ``Linear(H, 32), tanh, Linear(32, 32), tanh, Linear(32, 32), tanh, Linear(32, H)``), solver
    ``rk4`` with one step per gap between consecutive time points of ``batch.times``.
    """

    code_version = "1"
    batch_extras: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        num_inputs: int,
        num_classes: int,
        hidden_size: int = 32,
        hidden_hidden_size: int = 32,
        num_hidden_layers: int = 3,
        solver: str = "rk4",
    ):
        super().__init__()
        check_sizes(
            "ODERNN",
            num_inputs=num_inputs,
            num_classes=num_classes,
            hidden_size=hidden_size,
            hidden_hidden_size=hidden_hidden_size,
            num_hidden_layers=num_hidden_layers,
        )
        check_choice("ODERNN", "solver", solver, SOLVERS)
        self.func = mlp(hidden_size, hidden_hidden_size, hidden_size, num_hidden_layers, nn.Tanh)
        self.cell = nn.GRUCell(2 * num_inputs, hidden_size)  # input [x, mask]
        self.classifier = nn.Linear(hidden_size, num_classes)
        self.hidden_size = hidden_size
        self.solver = solver
        self.config = {
            "num_inputs": num_inputs,
            "num_classes": num_classes,
            "hidden_size": hidden_size,
            "hidden_hidden_size": hidden_hidden_size,
            "num_hidden_layers": num_hidden_layers,
            "solver": solver,
            "steps_per_gap": 1,
            "inputs": "values, mask, gaps(times)",
        }

    def forward(self, batch: SequenceBatch) -> Tensor:
        values = batch.values
        inputs = torch.cat([values, batch.mask.to(values.dtype)], dim=-1)
        # the GRU's input projection for all steps in one matmul: it does not depend on h
        gi = F.linear(inputs, self.cell.weight_ih, self.cell.bias_ih).unbind(1)
        observed = batch.mask.any(dim=-1, keepdim=True).unbind(1)  # (B, 1) per step
        gaps = batch.times.to(values.dtype).diff(dim=1).unsqueeze(-1).unbind(1)  # (B, 1) per gap
        h = values.new_zeros(values.shape[0], self.hidden_size)
        h = torch.where(observed[0], gru_step(gi[0], h, self.cell), h)
        outputs = [h]
        for k, dt in enumerate(gaps, start=1):
            h = fixed_step(self.func, h, dt, self.solver)
            h = torch.where(observed[k], gru_step(gi[k], h, self.cell), h)
            outputs.append(h)
        return self.classifier(last_valid(torch.stack(outputs, dim=1), batch.lengths))
