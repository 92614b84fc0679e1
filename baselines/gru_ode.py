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
per knot interval; the path's derivative at every stage time is computed before the loop.
Training adds the experiments' penalty ``0.03 * sum ||p||`` over the vector field.

Two backends take the same discrete steps. ``"autograd"``: the rk4 loop op by op through
autograd, the reference. ``"fast"`` (the default): the x-part and every stage's ``W x`` for the
whole solve at once, then the h-part without autograd, with the hand-written exact reverse-mode
derivative of the discrete solve (through the clamp, the gates, ``r * h`` and the rk4
combination) and the U gradients formed at the end in one matmul each, as
:mod:`baselines.fixed_step` does for the Neural CDE: about 3x faster per training step at the
reference size (``benchmarks/test_bench_ode.py``). The two agree to float rounding, outputs and
every gradient, and both agree with ``torchcde.cdeint`` with the same vector field (the tests),
so the fast backend kept ``code_version`` "1". Like the Neural CDE's, the fast solve treats the
path as data: a path that requires grad is solved by the autograd loop.

Deviations, stated: a Hermite spline with backward differences where the reference uses a
natural cubic spline (as for the Neural CDE), and the read-out at the last observed knot where
the reference reads at the series' original end (the state is only carried on by the path
between them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from bench.batch import SequenceBatch
from bench.models.base import check_sizes, last_valid, observed_lengths, weight_norm_penalty
from bench.models.registry import register_model

from .cde_path import batch_coefficients, cde_coefficients
from .common import check_choice, check_penalty
from .fixed_step import TABLEAUX, Tableau, rk_step, rk_step_backward
from .references import ncde_experiments

BACKENDS = ("auto", "fast", "autograd")

# torchdiffeq's "rk4" (rk4_alt_step_func, the 3/8 rule): stage times and weights
_RK4 = TABLEAUX["rk4"]
_RK4_NODES = _RK4.nodes
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


# --- the fast backend -------------------------------------------------------------------------
# The x-part depends on nothing that learns (z_0 = 0 and the path is data), so its stage inputs
# for the whole solve, and their projections W x + b (b: the U layers' biases), are formed before
# the loop, one op each. The loop carries h alone, without autograd, recording per stage what the
# reverse pass needs; that pass returns dL/d(projections), from which autograd forms the W and
# bias gradients in one matmul each, and forms the U gradients itself, one matmul each. The update
# gate enters as 1 - u = sigmoid(-(W_z x + U_z h + b_z)): the z-rows of the projection and of U
# are negated (in autograd, outside the solve), so one sigmoid gives r and 1 - u. Per-stage views
# of the buffers are made in bulk (``unbind``): a Python slice costs several times more.


class _FieldTape:
    """The h-part of the vector field, ``(stage n, h (B, H)) -> f = (1 - u) (g - clamp(h))``,
    evaluated without autograd and recorded for a hand-written reverse pass.

    ``u_rz`` ``(2H, H)``: the weights ``[U_r; -U_z]``; ``u_h`` ``(H, H)``: ``U_h``'s.
    ``proj_rz`` ``(N, B, 2H)``: ``[W_r x + b_r, -(W_z x + b_z)]`` at each stage's x;
    ``proj_h`` ``(N, B, H)``: ``W_h x + b_h``. With ``record`` it keeps, per stage, what
    :meth:`backward` reads; without it it is just the field (inference).
    """

    def __init__(self, u_rz: Tensor, u_h: Tensor, proj_rz: Tensor, proj_h: Tensor, record: bool):
        self.u_rz, self.u_h = u_rz, u_h
        self._u_rz_t, self._u_h_t = u_rz.t().contiguous(), u_h.t().contiguous()  # faster addmm
        self.proj_rz, self.proj_h = proj_rz.unbind(0), proj_h.unbind(0)
        self.record = record
        if record:
            calls, batch, size = proj_h.shape
            self.clamped = proj_h.new_empty(calls, batch, size)  # clamp(h) per stage
            self.gated = proj_h.new_empty(calls, batch, size)  # r * clamp(h)
            self.gates = proj_h.new_empty(calls, batch, 2 * size)  # [r, 1 - u]
            self._clamped, self._gated = self.clamped.unbind(0), self.gated.unbind(0)
            self._gates = self.gates.unbind(0)
            self._r, self._keep = self.gates[..., :size].unbind(0), self.gates[..., size:].unbind(0)
            self.inputs: list[Tensor] = []  # h per stage, before the clamp
            self.saved: list[tuple[Tensor, Tensor]] = []  # g, g - clamp(h)

    def __call__(self, n: int, h: Tensor) -> Tensor:
        if not self.record:
            size = h.shape[-1]
            hc = h.clamp(-1, 1)
            gates = torch.addmm(self.proj_rz[n], hc, self._u_rz_t).sigmoid_()
            g = torch.addmm(self.proj_h[n], gates[:, :size] * hc, self._u_h_t).tanh_()
            return (g - hc).mul_(gates[:, size:])
        hc = torch.clamp(h, -1, 1, out=self._clamped[n])
        torch.addmm(self.proj_rz[n], hc, self._u_rz_t, out=self._gates[n]).sigmoid_()
        gated = torch.mul(self._r[n], hc, out=self._gated[n])
        g = torch.addmm(self.proj_h[n], gated, self._u_h_t).tanh_()
        w = g - hc
        self.inputs.append(h)
        self.saved.append((g, w))
        return self._keep[n] * w

    def backward(self, n: int, grad: Tensor, grad_rz: Sequence[Tensor], grad_h: Tensor,
                 inside: Tensor | None) -> Tensor:  # fmt: skip
        """dL/dh of stage ``n`` from ``grad`` = dL/df ``(B, H)``. Writes dL/d(proj_h[n]) into
        ``grad_h`` and dL/d(proj_rz[n]) into ``grad_rz`` = (its r half, its z half, all of it).
        ``inside``: where the clamp let h through (None: everywhere)."""
        g, w = self.saved[n]
        r, keep = self._r[n], self._keep[n]
        grad_g = grad * keep
        torch.ops.aten.tanh_backward.grad_input(grad_g, g, grad_input=grad_h)
        grad_gated = torch.mm(grad_h, self.u_h)  # dL/d(r * clamp(h))
        r_part, z_part, both = grad_rz
        torch.mul(grad_gated, self._clamped[n], out=r_part)  # dL/dr
        torch.mul(grad, w, out=z_part)  # dL/d(1 - u)
        torch.ops.aten.sigmoid_backward.grad_input(both, self._gates[n], grad_input=both)
        # df/d clamp(h) = -(1 - u), plus the paths through r * clamp(h) and through U clamp(h)
        grad_in = torch.addmm(grad_g, both, self.u_rz, beta=-1).addcmul_(grad_gated, r)
        return grad_in if inside is None else grad_in.mul_(inside)

    def inside_clamp(self) -> list[Tensor | None]:
        """Per stage, ``(B, H)``: 1 where the clamp let h through (torch's clamp passes the
        gradient at the bounds too), 0 where it clipped; None where it clipped nowhere."""
        inside = torch.stack(self.inputs) == self.clamped
        clipped = (~inside.flatten(1).all(1)).tolist()
        if not any(clipped):
            return [None] * len(clipped)
        masks = inside.to(self.clamped.dtype).unbind(0)
        return [m if c else None for m, c in zip(masks, clipped, strict=True)]

    def parameter_grads(self, grad_rz: Tensor, grad_h: Tensor) -> list[Tensor]:
        """``[dL/du_rz, dL/du_h]`` summed over all stages (``grad_rz`` ``(N, B, 2H)``, ``grad_h``
        ``(N, B, H)``), one matmul each."""
        size = grad_h.shape[-1]
        clamped, gated = self.clamped.view(-1, size), self.gated.view(-1, size)
        return [grad_rz.view(-1, 2 * size).t() @ clamped, grad_h.view(-1, size).t() @ gated]


def _solve_h(tape: _FieldTape, h0: Tensor, coefs: Sequence[Tensor]) -> Tensor:
    """The h-part of the rk4 solve, without autograd: h at every knot ``(B, S + 1, H)``.

    ``coefs``: per step s, at ``s T .. s T + T - 1``, its tableau coefficients times the time
    channel's dX/ds at the stage whose k they multiply, each ``(B, 1)`` (k = f dX_time is never
    formed)."""
    per_step = len(_RK4.coefficients)
    h, outputs = h0, [h0]
    for s in range(len(coefs) // per_step):
        h = rk_step(tape, h, _RK4, coefs[s * per_step : (s + 1) * per_step], 4 * s)
        outputs.append(h)
    return torch.stack(outputs, dim=1)


class _GRUODESolve(torch.autograd.Function):
    """:func:`_solve_h` with its hand-written reverse pass. Inputs: ``proj_rz`` ``(N, B, 2H)``
    and ``proj_h`` ``(N, B, H)`` (see :class:`_FieldTape`; N = 4 S stages), ``coefs`` ``(S T, B,
    1)`` (data, see :func:`_solve_h`), ``h0`` ``(B, H)``, ``u_rz``, ``u_h``."""

    @staticmethod
    def forward(ctx, proj_rz, proj_h, coefs, h0, u_rz, u_h):
        tape = _FieldTape(u_rz, u_h, proj_rz, proj_h, record=True)
        out = _solve_h(tape, h0, coefs.unbind(0))
        ctx.tape = tape
        ctx.save_for_backward(coefs, u_rz, u_h)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        coefs, u_rz, u_h = ctx.saved_tensors
        tape = ctx.tape
        tape.u_rz, tape.u_h = u_rz, u_h  # the saved (version-checked) weights
        calls, batch, size = tape.clamped.shape
        grad_rz = grad_out.new_empty(calls, batch, 2 * size)
        grad_h = grad_out.new_empty(calls, batch, size)
        slots = list(zip(grad_rz[..., :size].unbind(0), grad_rz[..., size:].unbind(0),
                         grad_rz.unbind(0), strict=True))  # fmt: skip
        slots_h = grad_h.unbind(0)
        inside = tape.inside_clamp()
        coefs = coefs.unbind(0)
        per_step = len(_RK4.coefficients)
        knot_grads = grad_out.unbind(1)

        def stage_backward(n: int, g: Tensor) -> Tensor:
            return tape.backward(n, g, slots[n], slots_h[n], inside[n])

        grad = knot_grads[-1]
        for s in reversed(range(calls // 4)):
            step_coefs = coefs[s * per_step : (s + 1) * per_step]
            grad = rk_step_backward(stage_backward, grad, _RK4, step_coefs, 4 * s)
            grad = grad + knot_grads[s]
        return (grad_rz, grad_h, None, grad, *tape.parameter_grads(grad_rz, grad_h))


def _coefficient_stages(tableau: Tableau) -> list[int]:
    """Per coefficient number of ``tableau``, the stage j whose k_j it multiplies."""
    stages = [0] * len(tableau.coefficients)
    for row in (*tableau.stage_terms, tableau.output_terms):
        for j, number in row:
            stages[number] = j
    return stages


def _dense_tableau(tableau: Tableau, like: Tensor) -> tuple[Tensor, Tensor]:
    """``tableau``'s matrix ``(F, F)`` and weights ``(F,)`` as tensors of ``like``'s dtype."""
    matrix = like.new_zeros(len(tableau.nodes), len(tableau.nodes))
    weights = like.new_zeros(len(tableau.nodes))
    for i, row in enumerate(tableau.stage_terms):
        for j, number in row:
            matrix[i, j] = tableau.coefficients[number]
    for j, number in tableau.output_terms:
        weights[j] = tableau.coefficients[number]
    return matrix, weights


@register_model("gru-ode", description="GRU-ODE (the Neural CDE paper's): a CDE with state [x, h], h driven by the time "
                "channel, rk4", references=ncde_experiments({"hidden_size": 47}, paper_table=True), tags=("missing",))
class GRUODE(nn.Module):
    """GRU-ODE classifier: ``forward(batch)`` -> logits ``(B, num_classes)``.

    ``hidden_size`` 47 is the experiments' setting (``run_all``: ``gruode`` hidden 47).
    ``weight_penalty`` scales the training penalty on the vector field (0.03; 0 turns it off).
    Reads ``extras["cde_coeffs"]`` when the data module supplies it, else computes it.
    ``backend``: ``"auto"`` (default) and ``"fast"`` take the fast solve, ``"autograd"`` the
    reference loop (see the module docstring); ``config["backend"]`` records the choice.
    """

    # "1" still: the fast backend computes the same discrete solve (equal to float rounding)
    code_version = "1"
    batch_extras: ClassVar[dict[str, Callable]] = {"cde_coeffs": cde_coefficients}

    def __init__(self, num_inputs: int, num_classes: int, hidden_size: int = 47,
                 weight_penalty: float = 0.03, backend: str = "auto"):  # fmt: skip
        super().__init__()
        check_sizes("GRUODE", num_inputs=num_inputs, num_classes=num_classes, hidden_size=hidden_size)
        self.weight_penalty = check_penalty("GRUODE", weight_penalty)
        check_choice("GRUODE", "backend", backend, BACKENDS)
        self.backend = "fast" if backend == "auto" else backend  # fast applies to every setting
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
            "backend": self.backend,
        }

    def regularization(self) -> Tensor:
        """``weight_penalty * sum ||p||`` over the vector field, added to the training loss."""
        return weight_norm_penalty(self.func, self.weight_penalty)

    def coefficients(self, batch: SequenceBatch) -> Tensor:
        """The batch's spline coefficients ``(B, L-1, 4 (C + 1))``: precomputed or computed here."""
        return batch_coefficients(batch, self.path_channels, "GRUODE")

    def states(self, coeffs: Tensor, end: int) -> Tensor:
        """``z = [x, h]`` at knots ``0 .. end-1``: ``(B, end, C' + H)``, rk4 at step 1, by the
        model's backend (a path that requires grad always goes through autograd)."""
        if self.backend == "fast" and not coeffs.requires_grad:
            return self.fast_states(coeffs, end)
        return self.autograd_states(coeffs, end)

    def fast_states(self, coeffs: Tensor, end: int) -> Tensor:
        """:meth:`states` by the fast backend: the x-part and every stage's ``W x + b`` for the
        whole solve first, then h by :class:`_GRUODESolve` (see the comment above it)."""
        if coeffs.requires_grad:
            raise ValueError("GRUODE: coeffs require grad; the fast solve treats the path as data")
        matrix, weights = _dense_tableau(_RK4, coeffs)
        derivative = path_derivative(coeffs[:, : end - 1], _RK4_NODES)
        derivative = derivative.permute(1, 2, 0, 3)  # (S, 4, B, C')
        offsets = torch.einsum("ij,sjbc->sibc", matrix, derivative)  # stage inputs - x at the step
        increments = torch.einsum("j,sjbc->sbc", weights, derivative)
        x = torch.cat([increments.new_zeros(1, *increments.shape[1:]), increments.cumsum(0)])
        stage_x = (x[:-1].unsqueeze(1) + offsets).flatten(0, 1)  # (N = 4 S, B, C')
        f = self.func
        proj_rz = F.linear(stage_x, torch.cat([f.W_r.weight, -f.W_z.weight]),
                           torch.cat([f.U_r.bias, -f.U_z.bias]))  # (N, B, 2H)  # fmt: skip
        proj_h = F.linear(stage_x, f.W_h.weight, f.U_h.bias)  # (N, B, H)
        u_rz = torch.cat([f.U_r.weight, -f.U_z.weight])
        # each coefficient times dX_time at the stage whose k it multiplies: (S T, B, 1)
        columns = torch.tensor(_coefficient_stages(_RK4), device=coeffs.device)
        scale = coeffs.new_tensor(_RK4.coefficients).view(1, -1, 1, 1)
        coefs = (derivative[..., :1].index_select(1, columns) * scale).flatten(0, 1)
        h0 = coeffs.new_zeros(coeffs.shape[0], self.hidden_size)
        inputs = (proj_rz, proj_h, coefs, h0, u_rz, f.U_h.weight)
        if torch.is_grad_enabled() and any(t.requires_grad for t in inputs):
            h = _GRUODESolve.apply(*inputs)
        else:
            tape = _FieldTape(u_rz, f.U_h.weight, proj_rz, proj_h, record=False)
            h = _solve_h(tape, h0, coefs.unbind(0))
        return torch.cat([x.transpose(0, 1), h], dim=-1)

    def autograd_states(self, coeffs: Tensor, end: int) -> Tensor:
        """:meth:`states` by the reference backend: the rk4 loop op by op through autograd."""
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
