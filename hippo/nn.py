"""HiPPO-RNN: a gated recurrent cell whose state includes a HiPPO memory (Gu et al., 2020).

Reference wiring, per step with input ``x_t`` (B, C) (shapes: H hidden size, M memory
channels, N memory order):

    u   = W_u [x_t, h]                 (B, M)       what the memory records
    c   = update(c, u, t)              (B, M, N)    HiPPO memory of u's history
    h~  = tanh(W_h [x_t, c])           (B, H)
    g   = sigmoid(W_g [x_t, c])        (B, H)
    h   = (1 - g) h + g h~

Memory updates:

- ``legs`` (time-varying, no timescale): the first step (t = 0) sets ``c = (u, 0, ..., 0)``;
  step k >= 1 is one LegS step with ``dt_ratio = 1/k`` (index time) or, with
  ``timestamped=True``, ``dt_ratio = (t_k - t_{k-1}) / t_k`` from the given times.
- LTI measures (``legt``, ``lmu``, ``lagt``, ``tlagt``, ``glagt``, ``fout``):
  ``c_k = Ad c_{k-1} + Bd u_k`` from ``c_{-1} = 0``, with ``(Ad, Bd)`` discretised once.
  Every step advances one unit of index time and the memory's timescale is ``theta`` steps:
  the transition matrices are taken at unit timescale (``theta=1`` for legt/lmu/fout) and
  discretised with ``dt = 1 / theta``. This is the reference's parameterisation (its LTI
  cells discretise the unit-window matrices with ``dt = 0.01``, i.e. ``theta = 100`` steps,
  which is our default). For LegT/LMU/FouT ``theta`` is the sliding-window length in steps;
  for the Laguerre measures it is the decay timescale of the measure ``e^-u``.

Speed (the loop is sequential because u depends on h): :class:`HiPPORNN` runs the whole
recurrence in one autograd Function with a hand-written backward (BPTT); the tanh and gate
maps are one fused weight of width 2H, and the x-part of u is computed for the whole sequence
before the loop. Paths, by measure, device and dtype:

- LegS on CPU (float32/float64) when hippo's C++ extension builds (:mod:`hippo._ext`), index
  time or timestamps (shared or per series): ``_LegsKernelLoop``, the compiled O(N) LegS step
  (hippo/csrc/legs_step.cpp) called raw on preallocated buffers, its O(N) backward, and a
  compiled per-step gate backward. Loop body: ``addmm`` (u), the LegS step, ``addmm`` +
  ``addmm_`` (the 2H pre-activations), ``sigmoid`` (tanh is taken as ``2 sigmoid(2a) - 1``,
  torch's CPU tanh being several times slower), ``lerp``; the weight gradients are
  accumulated per step (no (L, B, 2H) temporaries).
- LTI measures, and LegS elsewhere (CUDA, other dtypes, no extension) with a ratio shared by
  the batch: ``_LinearMemoryLoop``, each step a dense matmul with the step's (N, N) matrix
  (LegS: hippo's cached step matrices, O(N^2) per step).
- LegS elsewhere with per-series timestamps: a plain loop through autograd with
  :func:`hippo.legs_step` (the O(N) scan off CPU).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import hippo
from hippo import _ext, legs
from hippo.discretize import METHODS
from hippo.legs import legs_alpha, step_matrices
from hippo.transition import MEASURES, resolve_params

# Default memory timescale (steps) of the LTI measures: the reference's dt = 0.01.
DEFAULT_THETA = 100.0


class HiPPOState(NamedTuple):
    """Recurrent state of a :class:`HiPPOCell`.

    ``h`` (B, H) hidden state; ``c`` (B, M, N) memory; ``step`` how many inputs were read;
    ``time`` (B,) timestamp of the last input (timestamped LegS only, else None).
    """

    h: Tensor
    c: Tensor
    step: int
    time: Tensor | None = None


def legs_ratios(times: Tensor) -> Tensor:
    """LegS step sizes ``(t_k - t_{k-1}) / t_k`` from ``times`` (B, L) -> (B, L-1), float64.

    Clamped to [0, 1] so that padding (garbage or repeated times past a series' end) and a
    repeated t = 0 freeze the memory instead of producing inf/NaN, which would otherwise leak
    into the gradients of the valid steps (0 * NaN = NaN in backward).
    """
    t = times.to(torch.float64)
    t1, dt = t[:, 1:], t[:, 1:] - t[:, :-1]
    ratio = torch.where(t1 > 0, dt / t1.clamp_min(torch.finfo(torch.float64).tiny), 0.0)
    return ratio.clamp(0.0, 1.0)


class HiPPOCell(nn.Module):
    """One HiPPO-RNN cell (parameters, memory matrices, and a single-step update).

    Args:
        input_size: C, channels of x.
        hidden_size: H.
        measure: one of :data:`hippo.MEASURES` (legs, legt, lmu, lagt, tlagt, glagt, fout).
        memory_order: N (default: ``hidden_size``).
        memory_channels: M, scalars recorded per step (default 1, as the reference).
        method: discretisation, one of forward_euler, backward_euler, bilinear (default), zoh
            (zoh is LTI only: LegS is time-varying).
        theta: LTI memory timescale in steps (default :data:`DEFAULT_THETA`); not used by legs.
        timestamped: legs only; take dt_ratio from the times passed to the step/forward.
        measure_args: measure parameters (``beta`` for lagt/tlagt/glagt, ``alpha`` for glagt);
            ``theta`` goes through the ``theta`` argument instead.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        measure: str = "legs",
        memory_order: int | None = None,
        memory_channels: int = 1,
        method: str = "bilinear",
        theta: float | None = None,
        timestamped: bool = False,
        measure_args: dict | None = None,
    ):
        super().__init__()
        memory_order = hidden_size if memory_order is None else memory_order
        for key, value in (("input_size", input_size), ("hidden_size", hidden_size),
                           ("memory_order", memory_order), ("memory_channels", memory_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"HiPPOCell: {key} must be a positive integer, got {value!r}")
        if measure not in MEASURES:
            raise ValueError(f"unknown measure {measure!r}; valid measures: {', '.join(MEASURES)}")
        valid_methods = tuple(m for m in METHODS if m != "gbt")
        if method not in valid_methods:
            raise ValueError(f"unknown method {method!r}; valid methods: {', '.join(valid_methods)}")
        measure_args = dict(measure_args or {})
        if "theta" in measure_args:
            raise ValueError("pass the window/timescale as theta=..., not in measure_args")
        self.measure_params = resolve_params(measure, measure_args)  # validates the names
        self.measure_params.pop("theta", None)  # theta enters through dt (module docstring)
        is_legs = measure == "legs"
        if is_legs:
            if method == "zoh":
                raise ValueError("method 'zoh' is not available for legs (time-varying); "
                                 "use bilinear, forward_euler or backward_euler")
            if theta is not None:
                raise ValueError("theta is not used by legs (it has no timescale); leave it None")
        else:
            if timestamped:
                raise ValueError(f"timestamped=True is only supported for legs, not {measure!r}")
            theta = DEFAULT_THETA if theta is None else theta
            if isinstance(theta, bool) or not (isinstance(theta, int | float)
                                               and 0 < theta < math.inf):
                raise ValueError(f"theta must be a positive finite number, got {theta!r}")
            theta = float(theta)

        self.input_size, self.hidden_size = input_size, hidden_size
        self.measure, self.method, self.theta = measure, method, theta
        self.memory_order, self.memory_channels = memory_order, memory_channels
        self.timestamped = bool(timestamped)
        H, M, N, C = hidden_size, memory_channels, memory_order, input_size

        # u = u_x x + u_h h + u_bias: one scalar per memory channel.
        self.u_x = nn.Parameter(torch.empty(M, C))
        self.u_h = nn.Parameter(torch.empty(M, H))
        self.u_bias = nn.Parameter(torch.empty(M))
        # [h~ pre-activation, gate pre-activation] = w_x x + w_c c_flat + w_bias, fused (2H).
        self.w_x = nn.Parameter(torch.empty(2 * H, C))
        self.w_c = nn.Parameter(torch.empty(2 * H, M * N))
        self.w_bias = nn.Parameter(torch.empty(2 * H))

        if not is_legs:
            # Buffers (not parameters: the memory is fixed), float32 by default. Not persistent:
            # they follow from the config, and _apply re-derives them from float64 on every
            # dtype/device change so that .double() gives float64-exact matrices.
            self.register_buffer("Ad", torch.empty(N, N), persistent=False)
            self.register_buffer("Bd", torch.empty(N), persistent=False)
            self._set_lti_matrices()
        self.reset_parameters()

    def _set_lti_matrices(self) -> None:
        """(Re)compute Ad, Bd in float64 and store them in the buffers' dtype and device."""
        A, B = hippo.transition(self.measure, self.memory_order, **self.measure_params)
        Ad, Bd = hippo.discretize(A, B, 1.0 / self.theta, self.method)
        self.Ad = Ad.to(self.Ad).contiguous()
        self.Bd = Bd.to(self.Bd).contiguous()

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        if self.measure != "legs" and self.Ad.is_floating_point():
            self._set_lti_matrices()
        return self

    def reset_parameters(self) -> None:
        """The reference initialisation: torch's Linear default for u and the gate, Xavier for h~."""
        H = self.hidden_size
        fan_u = self.input_size + self.hidden_size
        fan_h = self.input_size + self.memory_channels * self.memory_order
        bound_u, bound_h = 1 / math.sqrt(fan_u), 1 / math.sqrt(fan_h)
        xavier = math.sqrt(6.0 / (fan_h + H))
        with torch.no_grad():
            for p in (self.u_x, self.u_h, self.u_bias):
                p.uniform_(-bound_u, bound_u)
            self.w_x[:H].uniform_(-xavier, xavier)
            self.w_c[:H].uniform_(-xavier, xavier)
            self.w_x[H:].uniform_(-bound_h, bound_h)
            self.w_c[H:].uniform_(-bound_h, bound_h)
            self.w_bias.uniform_(-bound_h, bound_h)

    def extra_repr(self) -> str:
        theta = "" if self.theta is None else f", theta={self.theta:g}"
        return (f"{self.input_size}, {self.hidden_size}, measure={self.measure}, "
                f"memory_order={self.memory_order}, memory_channels={self.memory_channels}, "
                f"method={self.method}{theta}, timestamped={self.timestamped}")

    # ---- memory ------------------------------------------------------------------------------
    def memory_step(self, c: Tensor | None, u: Tensor, step: int, dt_ratio=None) -> Tensor:
        """The memory after reading ``u`` (B, M) as input number ``step`` (0, 1, ...).

        ``c`` (B, M, N) is the memory before (ignored at step 0). LegS: ``dt_ratio`` is a float
        or a (B, 1) tensor, default ``1/step`` (index time). Returns (B, M, N).
        """
        if self.measure == "legs":
            if step == 0:
                return hippo.legs_init(u, self.memory_order)
            ratio = 1.0 / step if dt_ratio is None else dt_ratio
            return hippo.legs_step(c, u, ratio, method=self.method)
        if step == 0:  # from c_{-1} = 0 one step is Bd u: skip the matmul with zeros
            return u[..., None] * self.Bd
        return hippo.lti_step(c, u, self.Ad, self.Bd)

    # ---- one step ----------------------------------------------------------------------------
    def initial_state(self, batch_size: int, *, like: Tensor) -> HiPPOState:
        """Zero hidden state and memory (dtype and device of ``like``)."""
        h = like.new_zeros(batch_size, self.hidden_size)
        c = like.new_zeros(batch_size, self.memory_channels, self.memory_order)
        return HiPPOState(h, c, 0, None)

    def forward_step(
        self, x: Tensor, state: HiPPOState | None = None, time: Tensor | None = None
    ) -> tuple[Tensor, HiPPOState]:
        """Read one input ``x`` (B, C); returns ``(h (B, H), new state)``.

        ``state`` None starts a sequence. ``time`` (B,): the input's timestamp, required when
        ``timestamped`` (LegS step ``(time - state.time) / time``), ignored otherwise.
        Slower per step than :class:`HiPPORNN` (no whole-sequence precomputation); same math.
        """
        if state is None:
            state = self.initial_state(x.shape[0], like=x)
        h, c, step, t_prev = state
        u = F.linear(x, self.u_x, self.u_bias) + F.linear(h, self.u_h)
        ratio = None
        if self.timestamped:
            if time is None:
                raise ValueError("this cell is timestamped: pass time (B,) with every step")
            if step > 0:
                ratio = legs_ratios(torch.stack([t_prev, time], dim=1)).to(x.dtype)
        c = self.memory_step(c, u, step, ratio)
        z = F.linear(x, self.w_x, self.w_bias) + F.linear(c.flatten(1), self.w_c)
        a, g = z.chunk(2, dim=-1)
        h = torch.lerp(h, torch.tanh(a), torch.sigmoid(g))
        return h, HiPPOState(h, c, step + 1, time if self.timestamped else None)


class _LinearMemoryLoop(torch.autograd.Function):
    """The whole recurrence with a hand-written backward (BPTT), for memories whose step is a
    fixed linear map: ``c_k = c_{k-1} @ P_k + u_k q_k`` (LTI measures; LegS with a ratio shared
    by the batch where :class:`_LegsKernelLoop` does not apply, with hippo's cached dense step
    matrices as ``(P_k, q_k)``).

    Why: autograd would record ~8 nodes per step and accumulate the weight gradients step by
    step; here the backward loop is 4 matmuls and 3 element-wise ops per step, the element-wise
    derivative factors are computed for all steps at once, and the weight gradients are one
    matmul each over all steps.

    Inputs: ``xu`` (L, B, M), ``xz`` (L, B, 2H) (the hoisted x-projections, biases included),
    ``u_h`` (M, H), ``w_c`` (2H, M*N), ``Ps`` list of L (N, N) (``Ps[0]`` unused: c_{-1} = 0),
    ``qs`` list of L (N,). Outputs: hidden states (L, B, H), memories (L, B, M*N).
    """

    @staticmethod
    def forward(ctx, xu, xz, u_h, w_c, Ps, qs):
        L, B, M = xu.shape
        H, MN = u_h.shape[1], w_c.shape[1]
        N = MN // M
        hs = xz.new_empty(L, B, H)
        cs = xz.new_empty(L, B, MN)
        th = xz.new_empty(L, B, H)
        sg = xz.new_empty(L, B, H)
        u_hT, w_cT = u_h.t(), w_c.t()
        h = xz.new_zeros(B, H)
        for k in range(L):
            u = torch.addmm(xu[k], h, u_hT).view(B * M, 1)
            c = cs[k].view(B * M, N)
            if k == 0:
                torch.mul(u, qs[0], out=c)
            else:
                torch.addmm(u * qs[k], cs[k - 1].view(B * M, N), Ps[k], out=c)
            z = torch.addmm(xz[k], cs[k], w_cT)
            torch.tanh(z[:, :H], out=th[k])
            torch.sigmoid(z[:, H:], out=sg[k])
            h = torch.lerp(h, th[k], sg[k], out=hs[k])
        ctx.save_for_backward(u_h, w_c, hs, cs, th, sg)
        ctx.Ps, ctx.qs = Ps, qs
        return hs, cs

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_hs, g_cs):
        u_h, w_c, hs, cs, th, sg = ctx.saved_tensors
        Ps, qs = ctx.Ps, ctx.qs
        L, B, H = hs.shape
        M, MN = u_h.shape[0], cs.shape[2]
        N = MN // M
        # h_k = h_{k-1} + s (t - h_{k-1}), t = tanh(a), s = sigmoid(g): derivative factors of
        # every step at once.
        h_prev = torch.cat([hs.new_zeros(1, B, H), hs[:-1]])
        fac_a = sg * (1 - th * th)  # dh/da
        fac_g = (th - h_prev) * sg * (1 - sg)  # dh/dg
        keep = 1 - sg  # dh/dh_prev (direct path)
        del h_prev
        dz = hs.new_empty(L, B, 2 * H)
        du = hs.new_empty(L, B, M)
        gh = hs.new_zeros(B, H)
        gc = hs.new_zeros(B, MN)
        for k in range(L - 1, -1, -1):
            if g_hs is not None:
                gh = gh + g_hs[k]
            torch.mul(gh, fac_a[k], out=dz[k, :, :H])
            torch.mul(gh, fac_g[k], out=dz[k, :, H:])
            if g_cs is not None:
                gc = gc + g_cs[k]
            gc = torch.addmm(gc, dz[k], w_c).view(B * M, N)  # dL/dc_k
            torch.mv(gc, qs[k], out=du[k].view(B * M))
            gh = torch.addmm(gh * keep[k], du[k], u_h)  # dL/dh_{k-1}
            gc = (gc @ Ps[k].t()).view(B, MN) if k else gc
        g_u_h = du[1:].reshape(-1, M).t() @ hs[:-1].reshape(-1, H)  # h_{-1} = 0
        g_w_c = dz.reshape(-1, 2 * H).t() @ cs.reshape(-1, MN)
        return du, dz, g_u_h, g_w_c, None, None


class _LegsKernelLoop(torch.autograd.Function):
    """The LegS recurrence with the compiled O(N) step (hippo/csrc/legs_step.cpp, called raw)
    and a hand-written backward (BPTT); CPU, float32/float64, when the extension is built.

    Same wiring and outputs as :class:`_LinearMemoryLoop`, but the memory step is the O(N)
    kernel instead of a dense (N, N) matmul, and its backward is one kernel call per step that
    returns dL/dc_{k-1} and dL/du_k together. Inputs: ``xu`` (L, B, M) (the hoisted
    x-projection of u), ``x`` (L, B, C) and the cell's ``w_x``, ``w_bias``, ``u_h``, ``w_c``;
    ``d`` (L, 1) float64 (ratio shared by the batch) or (L, B*M) (per series, repeated per
    memory channel): row k is step k's dt_ratio (row 0 unused: step 0 sets
    c_0 = (u_0, 0, ..., 0)); a ratio 0 keeps the memory as it is. ``alpha`` the GBT alpha.
    Outputs: hidden states (L, B, H), memories (L, B, M*N).

    Unlike :class:`_LinearMemoryLoop`, the x-projection of the 2H pre-activations is done per
    step (a (B, C) x (C, 2H) ``addmm`` into the step's buffer) and its weight gradients are
    accumulated per step, like w_c's: no (L, B, 2H) temporaries, whose allocation (page faults)
    and autograd matmul backward cost more than the per-step products. Per step, forward:
    ``addmm`` (u), the kernel, ``addmm`` + ``addmm_`` (2H pre-activations, in place in the
    saved activation buffer), ``sigmoid`` and 3 small element-wise ops (tanh(a) is taken as
    2 sigmoid(2a) - 1), ``lerp``; backward: a gate kernel (hippo_gate_bwd), ``addmm_`` (dL/dc),
    the LegS backward kernel, 2 ``addmm_`` (weight gradients).
    """

    @staticmethod
    def forward(ctx, xu, x, w_x, w_bias, u_h, w_c, d, alpha):
        lib = _ext.load()
        L, B, M = xu.shape
        H, MN = u_h.shape[1], w_c.shape[1]
        N = MN // M
        step = lib.hippo_legs_step_f32 if x.dtype == torch.float32 else lib.hippo_legs_step_f64
        xu = xu.contiguous()
        hs = x.new_empty(L, B, H)
        cs = x.new_empty(L, B, MN)
        act = x.new_empty(L, B, 2 * H)  # [tanh(a), sigmoid(g)] per step
        us = x.new_empty(L, B, M)
        u_hT, w_cT, w_xT = u_h.t(), w_c.t(), w_x.t()
        h = x.new_zeros(B, H)
        d_shared = 0 if d.shape[1] == 1 else 1
        d_ptr, d_row = d.data_ptr(), d.stride(0) * d.element_size()
        c_bytes, u_bytes = B * MN * cs.element_size(), B * M * us.element_size()
        c_ptr, u_ptr = cs.data_ptr(), us.data_ptr()
        lists = zip(xu.unbind(0), x.unbind(0), us.unbind(0), cs.unbind(0), act.unbind(0),
                    hs.unbind(0), strict=True)
        for k, (xu_k, x_k, u_k, c_k, act_k, h_k) in enumerate(lists):
            torch.addmm(xu_k, h, u_hT, out=u_k)
            if k == 0:
                c_k.zero_()
                c_k.view(B * M, N)[:, 0] = u_k.view(B * M)
            else:
                step(c_ptr + (k - 1) * c_bytes, u_ptr + k * u_bytes, d_ptr + k * d_row,
                     d_shared, c_ptr + k * c_bytes, B * M, N, alpha)
            torch.addmm(w_bias, x_k, w_xT, out=act_k)
            act_k.addmm_(c_k, w_cT)
            # tanh(a) = 2 sigmoid(2a) - 1: one sigmoid over all 2H columns (torch's CPU tanh
            # is several times slower than its sigmoid).
            th_k = act_k[:, :H]
            th_k.mul_(2)
            torch.sigmoid(act_k, out=act_k)
            th_k.mul_(2).sub_(1)
            h = torch.lerp(h, th_k, act_k[:, H:], out=h_k)
        ctx.save_for_backward(x, w_x, u_h, w_c, hs, cs, act, d)
        ctx.alpha = alpha
        ctx.set_materialize_grads(False)
        return hs, cs

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_hs, g_cs):
        lib = _ext.load()
        x, w_x, u_h, w_c, hs, cs, act, d = ctx.saved_tensors
        L, B, H = hs.shape
        M, MN = u_h.shape[0], cs.shape[2]
        N = MN // M
        f32 = hs.dtype == torch.float32
        step_bwd = lib.hippo_legs_step_bwd_f32 if f32 else lib.hippo_legs_step_bwd_f64
        gate_bwd = lib.hippo_gate_bwd_f32 if f32 else lib.hippo_gate_bwd_f64
        if g_hs is not None and g_hs.stride(2) != 1:
            g_hs = g_hs.contiguous()
        u_h = u_h.contiguous()
        want_x = ctx.needs_input_grad[1]
        g_x = x.new_empty(L, B, x.shape[2]) if want_x else None
        C = x.shape[2]
        g_w_c = w_c.new_zeros(w_c.shape)
        g_xb = w_x.new_zeros(C + 1, 2 * H)  # [w_x, w_bias] gradient, transposed
        xe = torch.cat([x, x.new_ones(L, B, 1)], dim=2)  # [x, 1]
        dz = hs.new_empty(B, 2 * H)  # dL/d(pre-activations) of the step
        du = hs.new_empty(L, B, M)
        gh = hs.new_zeros(B, H)  # dL/dh_k, less the parts the gate kernel adds
        gc = hs.new_zeros(B, MN)  # dL/dc_k
        gprev = hs.new_empty(B, MN)
        esz = hs.element_size()
        d_shared = 0 if d.shape[1] == 1 else 1
        d_ptr, d_row = d.data_ptr(), d.stride(0) * d.element_size()
        du_ptr, du_bytes = du.data_ptr(), B * M * esz
        dz_ptr, act_ptr, act_bytes = dz.data_ptr(), act.data_ptr(), B * 2 * H * esz
        h_ptr, h_bytes = hs.data_ptr(), B * H * esz
        gh_ptr, u_h_ptr = gh.data_ptr(), u_h.data_ptr()
        if g_hs is not None:
            ghs_ptr, ghs_row, ghs_step = g_hs.data_ptr(), g_hs.stride(1), g_hs.stride(0) * esz
        dzT = dz.t()
        xe_k, c_k, du_k = xe.unbind(0), cs.unbind(0), du.unbind(0)
        for k in range(L - 1, -1, -1):
            # dz and gh <- (1 - s_k) dL/dh_k (dL/dh_k = gh + g_hs[k] + du_{k+1} u_h)
            gate_bwd(gh_ptr, None if g_hs is None else ghs_ptr + k * ghs_step,
                     0 if g_hs is None else ghs_row,
                     du_ptr + (k + 1) * du_bytes if k < L - 1 else None, u_h_ptr, M,
                     act_ptr + k * act_bytes, h_ptr + (k - 1) * h_bytes if k else None,
                     dz_ptr, B, H)
            if g_cs is not None:
                gc.add_(g_cs[k])
            gc.addmm_(dz, w_c)  # dL/dc_k
            g_w_c.addmm_(dzT, c_k[k])
            g_xb.addmm_(xe_k[k].t(), dz)
            if want_x:
                torch.mm(dz, w_x, out=g_x[k])
            if k:  # dL/dc_{k-1} (into gprev) and dL/du_k in one kernel call
                step_bwd(gc.data_ptr(), None, None, None, d_ptr + k * d_row, d_shared,
                         gprev.data_ptr(), du_ptr + k * du_bytes, None, B * M, N, ctx.alpha)
                gc, gprev = gprev, gc
            else:  # c_0 = (u_0, 0, ..., 0)
                du_k[0].view(B * M).copy_(gc.view(B * M, N)[:, 0])
        g_u_h = du[1:].reshape(-1, M).t() @ hs[:-1].reshape(-1, H)  # h_{-1} = 0
        return du, g_x, g_xb[:C].t(), g_xb[C], g_u_h, g_w_c, None, None


class HiPPORNN(nn.Module):
    """A :class:`HiPPOCell` run over whole sequences in one fused loop (module docstring).

    ``HiPPORNN(input_size, hidden_size, **cell_kwargs)``; ``forward(x (B, L, C), times=None)``
    returns the hidden states (B, L, H) (and the memories (B, L, M, N) with
    ``return_memory=True``). ``times`` (B, L) is required by a timestamped cell and ignored
    otherwise. The recurrence is causal: outputs at step k depend on steps <= k only.
    """

    def __init__(self, input_size: int, hidden_size: int, **cell_kwargs):
        super().__init__()
        self.cell = HiPPOCell(input_size, hidden_size, **cell_kwargs)

    def _kernel_ratios(self, L: int, times: Tensor | None, x: Tensor) -> Tensor | None:
        """LegS dt_ratios for :class:`_LegsKernelLoop` (float64, (L, 1) shared by the batch in
        index time, (L, B*M) per series with times; row 0 unused), or None where the compiled
        step does not apply (other measures, CUDA, other dtypes, no C++ extension, or times
        that require grad: the kernel loop gives no gradient for the times)."""
        cell = self.cell
        if cell.measure != "legs" or not legs._use_cpp(x, x):
            return None
        if not cell.timestamped:
            d = torch.zeros(L, 1, dtype=torch.float64)
            d[1:, 0] = 1.0 / torch.arange(1, L, dtype=torch.float64)
            return d
        if times.requires_grad:
            return None
        ratios = legs_ratios(times.detach().cpu()).t()  # (L-1, B)
        d = torch.cat([ratios.new_zeros(1, ratios.shape[1]), ratios])
        return d.repeat_interleave(cell.memory_channels, dim=1).contiguous()

    def _linear_steps(self, L: int, times: Tensor | None, like: Tensor):
        """``(Ps, qs)``, each step's memory map ``c_k = c_{k-1} @ P_k + u_k q_k``, when the map
        is shared by the whole batch (LTI; LegS in index time or with times shared by the
        batch); None when LegS steps differ between series (per-series timestamps)."""
        cell = self.cell
        if cell.measure != "legs":
            return [cell.Ad.t()] * L, [cell.Bd] * L
        N, dtype, device = cell.memory_order, like.dtype, like.device
        if cell.timestamped:
            if times.requires_grad:  # the shared-matrix path gives no gradient w.r.t. times
                return None
            ratios = legs_ratios(times)  # (B, L-1) float64
            if not bool((ratios == ratios[:1]).all()):
                return None
            shared = ratios[0].tolist()
        else:
            shared = [1.0 / k for k in range(1, L)]
        alpha = legs_alpha(cell.method)
        first = torch.zeros(N, dtype=dtype, device=device)
        first[0] = 1.0  # legs_init: c_0 = (u, 0, ..., 0)
        Ps, qs = [None], [first]
        frozen = None
        for r in shared:
            if r > 0:
                P, q = step_matrices(N, r, alpha, dtype, device)
            else:  # ratio 0 (repeated time, padding): the memory stays as it is
                frozen = frozen or (torch.eye(N, dtype=dtype, device=device),
                                    torch.zeros(N, dtype=dtype, device=device))
                P, q = frozen
            Ps.append(P)
            qs.append(q)
        return Ps, qs

    def forward(
        self, x: Tensor, times: Tensor | None = None, *, return_memory: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Hidden states (B, L, H) of ``x`` (B, L, C) [and memories (B, L, M, N)]."""
        cell = self.cell
        B, L, _ = x.shape
        M, N = cell.memory_channels, cell.memory_order
        if cell.timestamped:
            if times is None:
                raise ValueError("this HiPPO-RNN is timestamped: pass times (B, L)")
            if times.shape != (B, L):
                raise ValueError(f"times has shape {tuple(times.shape)}; expected {(B, L)}")
        xt = x.transpose(0, 1)
        xu = F.linear(xt, cell.u_x, cell.u_bias)  # (L, B, M)
        d = self._kernel_ratios(L, times, x)
        if d is not None:
            hs, cs = _LegsKernelLoop.apply(xu, xt, cell.w_x, cell.w_bias, cell.u_h, cell.w_c, d,
                                           legs_alpha(cell.method))
            out = hs.transpose(0, 1)
            return (out, cs.view(L, B, M, N).transpose(0, 1)) if return_memory else out
        xz = F.linear(xt, cell.w_x, cell.w_bias)  # (L, B, 2H)
        steps = self._linear_steps(L, times, x)
        if steps is not None:
            hs, cs = _LinearMemoryLoop.apply(xu, xz, cell.u_h, cell.w_c, *steps)
            out = hs.transpose(0, 1)
            return (out, cs.view(L, B, M, N).transpose(0, 1)) if return_memory else out
        return self._autograd_loop(xu, xz, legs_ratios(times).to(x.dtype), return_memory)

    def _autograd_loop(self, xu: Tensor, xz: Tensor, ratios: Tensor, return_memory: bool):
        """Per-series LegS ratios (B, L-1) where :class:`_LegsKernelLoop` does not apply: a
        plain loop through autograd with :func:`hippo.legs_step` (the O(N) scan off CPU)."""
        cell = self.cell
        L, B, M = xu.shape
        # unbind: backward stacks the per-step gradients once (xu[k] per step would allocate a
        # full (L, B, .) zero gradient at every step: quadratic in L).
        xu, xz, ratios = xu.unbind(0), xz.unbind(0), ratios[..., None].unbind(1)
        u_hT, w_cT = cell.u_h.t(), cell.w_c.t()
        h = xz[0].new_zeros(B, cell.hidden_size)
        c = None
        hs, cs = [], []
        for k in range(L):
            u = torch.addmm(xu[k], h, u_hT)
            c = cell.memory_step(c, u, k, ratios[k - 1] if k else None)
            z = torch.addmm(xz[k], c.reshape(B, -1), w_cT)
            a, g = z.chunk(2, dim=1)
            h = torch.lerp(h, torch.tanh(a), torch.sigmoid(g))
            hs.append(h)
            if return_memory:
                cs.append(c)
        out = torch.stack(hs, dim=1)
        return (out, torch.stack(cs, dim=1)) if return_memory else out


__all__ = ["DEFAULT_THETA", "HiPPOCell", "HiPPORNN", "HiPPOState", "legs_ratios"]
