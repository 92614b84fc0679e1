"""Fixed-step explicit Runge-Kutta solves with an MLP vector field, written for small,
overhead-bound problems: the Neural CDE's ``dz = f(z) dX`` and the ODE-RNN's ``dh/dt = f(h)``.

At the reference sizes (hidden 32, batch 32, 182 steps) every op touches a few thousand numbers,
so a training step costs what its ops cost to dispatch and to record for autograd, not their
arithmetic. Going through autograd op by op, an rk4 step of an MLP field records about fifty
graph nodes and backward runs each of them. Here, instead:

- The forward pass runs without autograd and keeps, in an :class:`MLPTape`, the inputs and
  activations of every vector-field evaluation.
- The backward pass is written by hand: the exact reverse-mode derivative of the discrete solve
  (what autograd would compute, step by step in reverse), a few small ops per stage. The weight
  gradients of all stages are formed at the end in ONE matmul per layer.
- Whatever does not depend on the state is computed before the loop for all steps at once: for
  the CDE, the path derivative dX/dt at every stage time of the whole solve.

Only the state and the vector field's weights get gradients: the path (spline coefficients) and
the step sizes are data. Double backward is not supported.

The tableaux are torchdiffeq's fixed-grid solvers ``euler``, ``midpoint`` and ``rk4`` (in
torchdiffeq the 3/8-rule variant ``rk4_alt_step_func``), so a solve takes the same steps as
``torchdiffeq.odeint`` or ``torchcde.cdeint`` with ``options={"step_size": ...}`` and agrees with
them to float rounding, outputs and gradients (the tests check both).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


class Tableau:
    """An explicit Runge-Kutta method for ``dz/dt = k(t, z)``, step h from t.

    Stage i evaluates ``k_i = k(t + nodes[i] h, z + h sum_j matrix[i][j] k_j)``; the step returns
    ``z + h sum_j weights[j] k_j``. The nonzero coefficients are numbered once, in
    ``coefficients``; a step receives them already multiplied by its step size (:meth:`scaled`,
    :meth:`scaled_per_series`) and looks them up by number:

    - ``stage_terms[i]``: ``(j, number)`` pairs of the sum forming stage i's input;
    - ``output_terms``: the same for the step's result;
    - ``readers[j]``: who reads ``k_j``, as ``(number, stage i)`` pairs (i = -1: the result).
    """

    def __init__(self, nodes: tuple[float, ...], matrix: tuple[tuple[float, ...], ...],
                 weights: tuple[float, ...]):  # fmt: skip
        self.nodes = nodes
        self.coefficients: list[float] = []
        rows: list[tuple[tuple[int, int], ...]] = []
        for row in (*matrix, weights):
            terms = []
            for j, a in enumerate(row):
                if a != 0.0:
                    terms.append((j, len(self.coefficients)))
                    self.coefficients.append(a)
            rows.append(tuple(terms))
        self.stage_terms, self.output_terms = tuple(rows[:-1]), rows[-1]
        readers: list[list[tuple[int, int]]] = [[] for _ in nodes]
        for i, row in enumerate(rows):
            for j, number in row:
                readers[j].append((number, i if i < len(nodes) else -1))
        self.readers = tuple(tuple(r) for r in readers)

    def scaled(self, h: float, like: Tensor) -> list[Tensor]:
        """The coefficients times one step size ``h`` for the whole batch, as 0-dim tensors of
        ``like``'s dtype and device (a Python number would cost a conversion in every op)."""
        return list(like.new_tensor([a * h for a in self.coefficients]).unbind(0))

    def scaled_per_series(self, steps: Tensor) -> list[tuple[Tensor, ...]]:
        """Per step s, the coefficients times each series' step size ``steps[:, s]``, each
        ``(B, 1)``; ``steps`` ``(B, S)``. Computed for all steps in one op."""
        coefs = steps.new_tensor(self.coefficients).view(1, -1, 1, 1)
        scaled = steps.t().reshape(steps.shape[1], 1, steps.shape[0], 1) * coefs  # (S, T, B, 1)
        return [c.unbind(0) for c in scaled.unbind(0)]


TABLEAUX: dict[str, Tableau] = {
    "euler": Tableau((0.0,), ((),), (1.0,)),
    "midpoint": Tableau((0.0, 0.5), ((), (0.5,)), (0.0, 1.0)),
    # torchdiffeq's "rk4": the 3/8 rule (rk4_alt_step_func)
    "rk4": Tableau(
        (0.0, 1 / 3, 2 / 3, 1.0),
        ((), (1 / 3,), (-1 / 3, 1.0), (1.0, -1.0, 1.0)),
        (1 / 8, 3 / 8, 3 / 8, 1 / 8),
    ),
}


def combine(base: Tensor | None, terms: Sequence[tuple[Tensor, Tensor]]) -> Tensor:
    """``base + sum(c * x for c, x in terms)`` (``base`` may be None), one op per term.

    Coefficients are tensors that broadcast against ``x``: 0-dim (one step size for the whole
    batch) or ``(B, 1)`` (one per series); a Python number would cost a conversion per op.
    Never modifies ``base`` or the terms; ``terms`` must not be empty.
    """
    (c, x), rest = terms[0], terms[1:]
    out = torch.mul(c, x) if base is None else torch.addcmul(base, c, x)
    for c, x in rest:
        out.addcmul_(c, x)
    return out


def rk_step(
    stage: Callable[[int, Tensor], Tensor], z: Tensor, tableau: Tableau, coefs: Sequence[Tensor],
    first: int,
) -> Tensor:  # fmt: skip
    """One Runge-Kutta step from ``z`` (no autograd).

    ``stage(first + i, z_i)`` gives ``k_i`` (``first + i`` numbers the stage evaluations of the
    whole solve); ``coefs`` are the tableau's coefficients times this step's size.
    """
    ks: list[Tensor] = []
    for i, terms in enumerate(tableau.stage_terms):
        z_i = combine(z, [(coefs[t], ks[j]) for j, t in terms]) if terms else z
        ks.append(stage(first + i, z_i))
    return combine(z, [(coefs[t], ks[j]) for j, t in tableau.output_terms])


def rk_step_backward(
    stage_backward: Callable[[int, Tensor], Tensor], grad: Tensor, tableau: Tableau,
    coefs: Sequence[Tensor], first: int,
) -> Tensor:  # fmt: skip
    """The gradient at the start of a step from ``grad``, the gradient at its end.

    ``stage_backward(first + i, g)`` maps dL/dk_i to dL/d(input of stage i). Reverse mode visits
    the stages last first: dL/dk_j = sum over the sums that read k_j of coefficient * dL/d(sum).
    Every stage's input is z plus earlier stages, so dL/dz is ``grad`` plus all of them.
    """
    stage_grads: list[Tensor] = [grad] * len(tableau.nodes)
    for j in reversed(range(len(tableau.nodes))):
        terms = [(coefs[t], grad if i < 0 else stage_grads[i]) for t, i in tableau.readers[j]]
        stage_grads[j] = stage_backward(first + j, combine(None, terms))
    total = grad + stage_grads[0]
    for g in stage_grads[1:]:
        total.add_(g)
    return total


class MLPTape:
    """An MLP ``Linear, act, Linear, act, ..., Linear[, tanh]`` evaluated without autograd, every
    call recorded for a hand-written backward.

    ``linears``: ``(weight, bias)`` per layer, as ``nn.Linear`` holds them; ``hidden``: ``"relu"``
    or ``"tanh"`` after every layer but the last; ``final_tanh``: a tanh after the last.
    ``tape(x)`` ``(B, in) -> (B, out)``. After the forward pass, call :meth:`backward` once for
    every recorded call (reverse mode goes last first), then :meth:`parameter_grads`. With
    ``record=False`` it is just the MLP, for inference.
    """

    def __init__(
        self,
        linears: Sequence[tuple[Tensor, Tensor]],
        hidden: str,
        final_tanh: bool,
        record: bool = True,
    ):
        if hidden not in ("relu", "tanh"):
            raise ValueError(f"MLPTape: hidden must be 'relu' or 'tanh', got {hidden!r}")
        self.weights = [w for w, _ in linears]
        self.biases = [b for _, b in linears]
        self._weights_t = [w.t().contiguous() for w in self.weights]  # faster addmm
        self.hidden = hidden
        self.final_tanh = final_tanh
        self.record = record
        self.inputs: list[list[Tensor]] = [[] for _ in linears]  # per layer, per call
        self.outputs: list[Tensor] = []  # per call, kept only with final_tanh
        self.deltas: list[list[Tensor | None]] = []  # per layer, per call: dL/d(pre-activation)

    def __call__(self, x: Tensor) -> Tensor:
        last = len(self.weights) - 1
        for layer, (wt, b) in enumerate(zip(self._weights_t, self.biases, strict=True)):
            if self.record:
                self.inputs[layer].append(x)
            x = torch.addmm(b, x, wt)
            if layer < last:
                x = x.relu_() if self.hidden == "relu" else x.tanh_()
        if self.final_tanh:
            x = x.tanh_()
            if self.record:
                self.outputs.append(x)
        return x

    def backward(self, call: int, grad: Tensor) -> Tensor:
        """dL/d(input) of recorded call ``call`` from ``grad`` = dL/d(output) ``(B, out)``."""
        if not self.deltas:
            self.deltas = [[None] * len(self.inputs[0]) for _ in self.weights]
        if self.final_tanh:
            grad = torch.ops.aten.tanh_backward(grad, self.outputs[call])
        for layer in reversed(range(len(self.weights))):
            self.deltas[layer][call] = grad
            grad = torch.mm(grad, self.weights[layer])
            if layer > 0:  # through the activation that produced this layer's input
                act = self.inputs[layer][call]
                if self.hidden == "relu":
                    grad = torch.ops.aten.threshold_backward(grad, act, 0)
                else:
                    grad = torch.ops.aten.tanh_backward(grad, act)
        return grad

    def parameter_grads(self) -> list[Tensor]:
        """``[dW_1, db_1, dW_2, db_2, ...]`` summed over all calls: one matmul per layer."""
        if not self.inputs[0]:  # never called
            return [torch.zeros_like(t) for pair in zip(self.weights, self.biases, strict=True) for t in pair]
        grads = []
        for layer in range(len(self.weights)):
            delta = torch.cat(self.deltas[layer])  # (calls * B, out)
            grads += [delta.t() @ torch.cat(self.inputs[layer]), delta.sum(0)]
        self.deltas = []
        return grads


def steps_per_interval(step_size: float) -> int | None:
    """``n`` when ``step_size`` is ``1 / n`` (to 1e-9), else None: the fast CDE solve steps
    exactly onto the knots."""
    n = round(1.0 / step_size)
    return n if n >= 1 and abs(n * step_size - 1.0) < 1e-9 else None


def hermite_derivative(coeffs: Tensor, times: Tensor) -> Tensor:
    """dX/dt of torchcde's cubic spline at all ``times`` in one pass.

    ``coeffs`` ``(B, L-1, 4P)`` as ``torchcde.CubicSpline`` takes them (per interval ``a, b,
    two_c, three_d``; knots at 0, 1, ..., L-1); ``times`` ``(T,)``. Returns ``(B, T, P)``. On
    interval k at fraction r = t - k, ``dX/dt = b + (two_c + three_d r) r``; a time on a knot
    k >= 1 reads interval k - 1 at r = 1, as ``CubicSpline.derivative`` does (bucketize).
    """
    p = coeffs.shape[-1] // 4
    index = (torch.ceil(times) - 1).clamp(0, coeffs.shape[-2] - 1).long()
    frac = (times - index).to(coeffs.dtype).view(1, -1, 1).to(coeffs.device)
    at = coeffs.index_select(-2, index.to(coeffs.device))  # (B, T, 4P)
    b, two_c, three_d = at[..., p : 2 * p], at[..., 2 * p : 3 * p], at[..., 3 * p :]
    return b + (two_c + three_d * frac) * frac


def _cde_forward(tape: MLPTape, z0: Tensor, dxdt: Tensor, method: str, per_knot: int) -> Tensor:
    """The solve of :func:`cde_solve`, without autograd; ``dxdt`` ``(S, F, B, P)``."""
    steps, num_stages, batch, p = dxdt.shape
    hidden = z0.shape[-1]
    tableau = TABLEAUX[method]
    coefs = tableau.scaled(1.0 / per_knot, z0)
    columns = dxdt.reshape(steps * num_stages, batch, p, 1).unbind(0)

    def stage(n: int, z: Tensor) -> Tensor:  # k = f(z) dX/dt: (B, H, P) @ (B, P, 1)
        return torch.bmm(tape(z).view(batch, hidden, p), columns[n]).view(batch, hidden)

    z, outputs = z0, [z0]
    for s in range(steps):
        z = rk_step(stage, z, tableau, coefs, s * num_stages)
        if (s + 1) % per_knot == 0:
            outputs.append(z)
    return torch.stack(outputs, dim=1)


class _CDESolve(torch.autograd.Function):
    """:func:`_cde_forward` with its hand-written reverse pass (see the module docstring)."""

    @staticmethod
    def forward(ctx, z0, dxdt, method, per_knot, *params):
        tape = MLPTape(list(zip(params[::2], params[1::2], strict=True)), "relu", final_tanh=True)
        out = _cde_forward(tape, z0, dxdt, method, per_knot)
        ctx.tape, ctx.method, ctx.per_knot = tape, method, per_knot
        ctx.save_for_backward(dxdt, *params)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        dxdt, *params = ctx.saved_tensors
        tape = ctx.tape
        tape.weights = params[::2]  # the saved (version-checked) weights
        steps, num_stages, batch, p = dxdt.shape
        hidden = grad_out.shape[-1]
        tableau = TABLEAUX[ctx.method]
        coefs = tableau.scaled(1.0 / ctx.per_knot, grad_out)
        rows_of_dx = dxdt.reshape(steps * num_stages, batch, 1, p).unbind(0)
        knot_grads = grad_out.unbind(1)

        def stage_backward(n: int, g: Tensor) -> Tensor:  # dL/dk (B, H) -> dL/dz_n
            g_field = (g.view(batch, hidden, 1) * rows_of_dx[n]).view(batch, -1)  # dL/df(z_n)
            return tape.backward(n, g_field)

        grad = knot_grads[-1]
        for s in reversed(range(steps)):
            knot, at_knot = divmod(s + 1, ctx.per_knot)
            if at_knot == 0 and s + 1 < steps:
                grad = grad + knot_grads[knot]
            grad = rk_step_backward(stage_backward, grad, tableau, coefs, s * num_stages)
        return (grad + knot_grads[0], None, None, None, *tape.parameter_grads())


def cde_solve(
    linears: Sequence[tuple[Tensor, Tensor]],
    z0: Tensor,
    coeffs: Tensor,
    knots: int,
    method: str,
    steps_per_knot: int = 1,
) -> Tensor:
    """Solve ``dz = f(z) dX/dt dt`` from knot 0 to knot ``knots - 1``: z at every knot ``(B, knots, H)``.

    ``f(z) = tanh(MLP(z))`` viewed ``(B, H, P)``, the MLP given by ``linears`` (``(weight,
    bias)`` per ``nn.Linear``, ReLU between them); ``z0`` ``(B, H)``; ``coeffs`` ``(B, L-1, 4P)``,
    torchcde Hermite cubic coefficients with knots at 0..L-1 (``2 <= knots <= L``), treated as
    data; ``steps_per_knot`` steps of ``1 / steps_per_knot`` per interval, with ``method`` one of
    :data:`TABLEAUX`. The same solve as ``torchcde.cdeint(X, func, z0, X.grid_points[:knots],
    method=method, options={"step_size": 1 / steps_per_knot})``.
    """
    if coeffs.requires_grad:
        raise ValueError("cde_solve: coeffs require grad, but the fast solve treats the path as data")
    tableau = TABLEAUX[method]
    n = steps_per_knot
    steps = (knots - 1) * n
    # stage j of step s is at time (s + c_j) / n: exactly on a knot when s + c_j = k n
    starts = torch.arange(steps, dtype=torch.float64).view(-1, 1)
    times = (starts + torch.tensor(tableau.nodes, dtype=torch.float64)) / n  # (S, F)
    dxdt = hermite_derivative(coeffs, times.flatten())  # (B, S * F, P)
    dxdt = dxdt.view(dxdt.shape[0], steps, len(tableau.nodes), -1).permute(1, 2, 0, 3).contiguous()
    params = [t for pair in linears for t in pair]
    if torch.is_grad_enabled() and (z0.requires_grad or any(t.requires_grad for t in params)):
        return _CDESolve.apply(z0, dxdt, method, n, *params)
    return _cde_forward(MLPTape(linears, "relu", True, record=False), z0, dxdt, method, n)
