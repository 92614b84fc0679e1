"""ODE-RNN (Rubanova, Chen, Duvenaud, "Latent ODEs for Irregularly-Sampled Time Series", NeurIPS
2019), in the setting of the Neural CDE experiments (Kidger et al. 2020) that the HiPPO paper's
CharacterTrajectories baselines reused.

Between consecutive steps t_{k-1} -> t_k the hidden state follows ``dh/dt = f(h)`` (an MLP with
tanh), solved with ONE fixed step of size ``t_k - t_{k-1}`` (``rk4``: one step per gap, as the
reference's ``odeint(..., method="rk4")`` over ``[t_{k-1}, t_k]`` does); then, where anything was
observed at t_k, a GRU cell reads ``[x_k, mask_k]``. Steps with nothing observed keep the evolved h.
The classifier reads h at each series' last observation (the experiments' ``final_index``; see
:func:`bench.models.base.observed_lengths`), and training adds their penalty ``0.03 * sum ||p||``
over all parameters (:meth:`ODERNN.regularization`).

The gaps differ per series, so the solver step is written here with a per-series step size
``(B, 1)`` instead of calling ``torchdiffeq.odeint`` once per series: the same arithmetic as
torchdiffeq's fixed-grid step for the same method (``rk4`` is torchdiffeq's 3/8-rule variant),
which the tests check against ``torchdiffeq.odeint``. The whole recurrence runs as one autograd
function with a hand-written reverse pass (see :mod:`baselines.fixed_step`): at these sizes a
training step costs per op, and autograd would record some sixty ops per time step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from bench.batch import SequenceBatch
from bench.models.base import check_sizes, last_valid, observed_lengths, weight_norm_penalty
from bench.models.registry import register_model

from .common import check_choice, check_penalty, mlp
from .fixed_step import TABLEAUX, MLPTape, rk_step, rk_step_backward
from .references import ncde_experiments

SOLVERS = ("rk4", "midpoint", "euler")


class GRUTape:
    """``nn.GRUCell`` updates from a precomputed input projection, evaluated without autograd and
    recorded for a hand-written backward (the same equations and gate layout r, z, n).

    ``tape(gi_rz, gi_n, h)``: ``gi`` = ``F.linear(x, weight_ih, bias_ih)`` split into its r, z
    part ``(B, 2H)`` and its n part ``(B, H)``; ``h`` ``(B, H)``; returns the new ``(B, H)``.
    """

    def __init__(self, weight_hh: Tensor, bias_hh: Tensor, record: bool = True):
        self.weight_hh = weight_hh
        self.bias_hh = bias_hh
        self._weight_hh_t = weight_hh.t().contiguous()
        self.record = record
        self.saved: list[tuple[Tensor, ...]] = []  # per call: h, r, z, n, W_hn h + b_hn
        self.grad_gh: list[Tensor | None] = []  # per call: dL/d(W_hh h + b_hh)

    def __call__(self, gi_rz: Tensor, gi_n: Tensor, h: Tensor) -> Tensor:
        size = h.shape[-1]
        gh = torch.addmm(self.bias_hh, h, self._weight_hh_t)
        rz = torch.add(gi_rz, gh[:, : 2 * size]).sigmoid_()
        r, z = rz[:, :size], rz[:, size:]
        gh_n = gh[:, 2 * size :]
        n = torch.addcmul(gi_n, r, gh_n).tanh_()
        if self.record:
            self.saved.append((h, r, z, n, gh_n))
        return torch.lerp(n, h, z)  # n + z (h - n)

    def backward(self, call: int, grad: Tensor) -> tuple[Tensor, Tensor]:
        """``(dL/dh, dL/dgi)`` of recorded call ``call`` from ``grad`` = dL/d(new h)."""
        if not self.grad_gh:
            self.grad_gh = [None] * len(self.saved)
        h, r, z, n, gh_n = self.saved[call]
        grad_h = grad * z
        grad_n = torch.ops.aten.tanh_backward(grad - grad_h, n)  # through n's tanh
        grad_z = torch.ops.aten.sigmoid_backward(grad * (h - n), z)
        grad_r = torch.ops.aten.sigmoid_backward(grad_n * gh_n, r)
        grad_gh = torch.cat([grad_r, grad_z, grad_n * r], dim=1)
        self.grad_gh[call] = grad_gh
        grad_gi = torch.cat([grad_r, grad_z, grad_n], dim=1)
        return torch.addmm(grad_h, grad_gh, self.weight_hh), grad_gi

    def parameter_grads(self) -> list[Tensor]:
        """``[dW_hh, db_hh]`` summed over all calls (one matmul), once :meth:`backward` has
        seen every call."""
        if not self.saved:  # never called: nothing was observed
            return [torch.zeros_like(self.weight_hh), torch.zeros_like(self.bias_hh)]
        grad_gh = torch.cat(self.grad_gh)  # (calls * B, 3H)
        h = torch.cat([saved[0] for saved in self.saved])
        self.grad_gh = []
        return [grad_gh.t() @ h, grad_gh.sum(0)]


def _step_kinds(observed: Tensor) -> list[str]:
    """Per step ``"all"``, ``"none"`` or ``"some"``: which series observed anything there."""
    every, anyone = observed.all(0).tolist(), observed.any(0).tolist()
    return ["all" if a else "some" if b else "none" for a, b in zip(every, anyone, strict=True)]


def _forward(
    mlp_tape: MLPTape, gru_tape: GRUTape, gi: Tensor, observed: Tensor, gaps: Tensor, method: str
) -> Tensor:
    """The recurrence, without autograd: hidden states at every step ``(B, L, H)``.

    ``gi`` ``(B, L, 3H)``; ``observed`` ``(B, L)`` bool; ``gaps`` ``(B, L - 1)``.
    """
    batch, length, three_h = gi.shape
    size = three_h // 3
    tableau = TABLEAUX[method]
    kinds = _step_kinds(observed)
    seen = observed.unsqueeze(-1).unbind(1)  # (B, 1) per step
    gi_rz, gi_n = gi[..., : 2 * size].unbind(1), gi[..., 2 * size :].unbind(1)
    coefs = tableau.scaled_per_series(gaps)

    def jump(k: int, h: Tensor) -> Tensor:
        if kinds[k] == "none":
            return h
        new = gru_tape(gi_rz[k], gi_n[k], h)
        return new if kinds[k] == "all" else torch.where(seen[k], new, h)

    def stage(n: int, z: Tensor) -> Tensor:
        return mlp_tape(z)

    h = jump(0, gi.new_zeros(batch, size))
    outputs = [h]
    for k in range(1, length):
        h = rk_step(stage, h, tableau, coefs[k - 1], (k - 1) * len(tableau.nodes))
        h = jump(k, h)
        outputs.append(h)
    return torch.stack(outputs, dim=1)


class _ODERNNRecurrence(torch.autograd.Function):
    """:func:`_forward` with its hand-written reverse pass."""

    @staticmethod
    def forward(ctx, gi, observed, gaps, method, *params):
        *linears, weight_hh, bias_hh = params
        mlp_tape = MLPTape(list(zip(linears[::2], linears[1::2], strict=True)), "tanh", False)
        gru_tape = GRUTape(weight_hh, bias_hh)
        out = _forward(mlp_tape, gru_tape, gi, observed, gaps, method)
        ctx.tapes, ctx.method = (mlp_tape, gru_tape), method
        ctx.save_for_backward(observed, gaps, *params)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        observed, gaps, *params = ctx.saved_tensors
        mlp_tape, gru_tape = ctx.tapes
        mlp_tape.weights = params[:-2:2]  # the saved (version-checked) weights
        gru_tape.weight_hh = params[-2]
        tableau = TABLEAUX[ctx.method]
        length = grad_out.shape[1]
        kinds = _step_kinds(observed)
        seen = observed.unsqueeze(-1).unbind(1)
        coefs = tableau.scaled_per_series(gaps)
        step_grads = grad_out.unbind(1)
        calls = sum(kind != "none" for kind in kinds)
        zero_gi = grad_out.new_zeros(grad_out.shape[0], 3 * grad_out.shape[2])
        grad_gi = [zero_gi] * length

        def jump_backward(k: int, grad: Tensor) -> Tensor:
            nonlocal calls
            if kinds[k] == "none":
                return grad
            calls -= 1
            if kinds[k] == "all":
                grad_h, grad_gi[k] = gru_tape.backward(calls, grad)
                return grad_h
            grad_h, grad_gi[k] = gru_tape.backward(calls, grad * seen[k])
            return torch.where(seen[k], grad_h, grad)

        def stage_backward(n: int, g: Tensor) -> Tensor:
            return mlp_tape.backward(n, g)

        grad = step_grads[-1]
        for k in reversed(range(1, length)):
            grad = jump_backward(k, grad)
            grad = rk_step_backward(
                stage_backward, grad, tableau, coefs[k - 1], (k - 1) * len(tableau.nodes)
            )
            grad = grad + step_grads[k - 1]
        jump_backward(0, grad)
        grads = [*mlp_tape.parameter_grads(), *gru_tape.parameter_grads()]
        return (torch.stack(grad_gi, dim=1), None, None, None, *grads)


@register_model("ode-rnn", description="ODE-RNN (Rubanova et al. 2019): rk4 ODE between observations, GRU at them",
                references=ncde_experiments({"hidden_size": 32, "hidden_hidden_size": 32, "num_hidden_layers": 3},
                                            paper_table=True),
                tags=("timescale", "timestamps", "missing", "throughput"))
class ODERNN(nn.Module):
    """ODE-RNN classifier: ``forward(batch)`` -> logits ``(B, num_classes)`` from the last valid h.

    Reference configuration (Neural CDE experiments, reused by the HiPPO paper): ``hidden_size``
    32, ``hidden_hidden_size`` 32, ``num_hidden_layers`` 3 (the ODE function is
    ``Linear(H, 32), tanh, Linear(32, 32), tanh, Linear(32, 32), tanh, Linear(32, H)``), solver
    ``rk4`` with one step per gap between consecutive time points of ``batch.times``. Gradients
    reach the parameters and the values, not the times (they are data). ``weight_penalty``
    scales the training penalty (0.03 in the experiments; 0 turns it off).
    """

    # 3: read-out at the last observation, and the experiments' weight-norm penalty
    code_version = "3"
    batch_extras: ClassVar[dict[str, Callable]] = {}  # no per-split preprocessing

    def __init__(
        self,
        num_inputs: int,
        num_classes: int,
        hidden_size: int = 32,
        hidden_hidden_size: int = 32,
        num_hidden_layers: int = 3,
        solver: str = "rk4",
        weight_penalty: float = 0.03,
    ):
        super().__init__()
        self.weight_penalty = check_penalty("ODERNN", weight_penalty)
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
            "readout": "last observation",
            "weight_penalty": self.weight_penalty,
        }

    def regularization(self) -> Tensor:
        """``weight_penalty * sum ||p||`` over every parameter, added to the training loss."""
        return weight_norm_penalty(self, self.weight_penalty)

    def hidden_states(self, batch: SequenceBatch) -> Tensor:
        """h after every step ``(B, L, H)`` (past ``lengths`` it runs on over the padding)."""
        values = batch.values
        inputs = torch.cat([values, batch.mask.to(values.dtype)], dim=-1)
        # the GRU's input projection for all steps in one matmul: it does not depend on h
        gi = F.linear(inputs, self.cell.weight_ih, self.cell.bias_ih)  # (B, L, 3H)
        observed = batch.mask.any(dim=-1)  # (B, L)
        gaps = batch.times.to(values.dtype).diff(dim=1).detach()  # (B, L - 1)
        linears = [(m.weight, m.bias) for m in self.func if isinstance(m, nn.Linear)]
        params = [*(t for pair in linears for t in pair), self.cell.weight_hh, self.cell.bias_hh]
        if torch.is_grad_enabled() and (gi.requires_grad or any(p.requires_grad for p in params)):
            return _ODERNNRecurrence.apply(gi, observed, gaps, self.solver, *params)
        tapes = (MLPTape(linears, "tanh", False, record=False),
                 GRUTape(self.cell.weight_hh, self.cell.bias_hh, record=False))  # fmt: skip
        return _forward(*tapes, gi, observed, gaps, self.solver)

    def forward(self, batch: SequenceBatch) -> Tensor:
        lengths = observed_lengths(batch.mask, batch.lengths)
        end = int(lengths.max())  # nothing after the batch's last observation is read
        cropped = SequenceBatch(batch.values[:, :end], batch.times[:, :end], batch.mask[:, :end],
                                lengths, batch.labels)  # fmt: skip
        return self.classifier(last_valid(self.hidden_states(cropped), lengths))
