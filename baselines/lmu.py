"""Legendre Memory Unit (Voelker, Kajic, Eliasmith, "Legendre Memory Units: Continuous-Time
Representation in Recurrent Neural Networks", NeurIPS 2019), in two cells.

A linear memory m (order N) holds the Legendre coefficients of a scalar signal u over a sliding
window of ``theta`` steps. :class:`LMU` (registered ``lmu``) is the HiPPO reference code's LMU cell
(hippo-code ``model/opcell.py`` ``LMUCell`` on ``model/memory.py`` ``MemoryCell``), which
produced the HiPPO paper's LMU rows: the plain cell plus a sigmoid gate on h::

    u_t  = e_x . x_t + e_h . h_{t-1} + e_m . m_{t-1}
    m_t  = Ad m_{t-1} + Bd u_t
    h~_t = tanh(W_x x_t + W_m m_t + W_h h_{t-1})
    g_t  = sigmoid(G [x_t, m_t, h_{t-1}])
    h_t  = (1 - g_t) h_{t-1} + g_t h~_t

with no biases and hippo-code's initialisation: e_x = 1, e_h = e_m = 0, W_x = W_h = 0, W_m
Xavier-normal, G Kaiming-normal (linear). :class:`VoelkerLMU` (``lmu-voelker``) is the paper's
own cell, ``h_t = h~_t`` without the gate, with keras-lmu's initialisation.

``A[i, j] = (2i+1) * (-1 if i < j else (-1)^(i-j+1)) / theta``, ``B[i] = (2i+1) (-1)^i / theta``
(``hippo.transition("lmu")``), discretised by zero-order hold with dt = 1 step
(``hippo.discretize(..., "zoh")``), in float64 and then cast. The model reads values only (index
time), as in the reference implementations.

``Ad`` and ``Bd`` are fixed functions of the config (``memory_order``, ``theta``), so they are
non-persistent buffers: not in ``state_dict()``, and loading a checkpoint (from any theta) keeps
the matrices of the model being loaded into. Older checkpoints that still hold ``Ad``/``Bd``
load too; those entries are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.batch import SequenceBatch
from bench.models.base import check_sizes, last_valid
from bench.models.registry import register_model
from hippo import discretize, transition

from .references import hippo_code


def _memory(model: nn.Module, num_inputs: int, num_classes: int, hidden_size: int,
            memory_order: int | None, theta: float) -> int:
    """Check the sizes and set the fixed ZOH memory ``Ad``, ``Bd`` on ``model``: its order N."""
    memory_order = hidden_size if memory_order is None else memory_order
    check_sizes(type(model).__name__, num_inputs=num_inputs, num_classes=num_classes,
                hidden_size=hidden_size, memory_order=memory_order)  # fmt: skip
    if isinstance(theta, bool) or not (isinstance(theta, int | float) and math.isfinite(theta) and theta > 0):
        raise ValueError(f"{type(model).__name__}: theta must be a positive number of steps, got {theta!r}")
    A, B = transition("lmu", memory_order, theta=float(theta))
    Ad, Bd = discretize(A, B, 1.0, "zoh")
    # recomputed from the config, never loaded: a checkpoint of another theta must not bring its
    # matrices along (see the module docstring)
    model.register_buffer("Ad", Ad.float(), persistent=False)
    model.register_buffer("Bd", Bd.float(), persistent=False)
    model.register_load_state_dict_pre_hook(_drop_fixed_matrices)
    return memory_order


@register_model("lmu", description="LMU, hippo-code's gated cell (the HiPPO paper's LMU): Legendre memory, ZOH, theta 100",
                references=hippo_code(), tags=("timescale", "timestamps", "mnist", "throughput"))
class LMU(nn.Module):
    """hippo-code's LMU cell, gated (module docstring): ``forward(batch)`` -> logits
    ``(B, num_classes)`` from h after the last step read (``lengths``), as hippo-code reads it.

    Defaults are hippo-code's: ``hidden_size`` 256, ``memory_order`` = ``hidden_size``, one memory
    (scalar u), ``theta`` 100 steps, ZOH with dt = 1 (hippo-code: dt = 1 / theta on the
    unscaled matrices, the same system). ``theta`` is in steps, whatever the sampling rate.
    """

    # 2: hippo-code's gated cell and initialisation (1 was the plain cell, now VoelkerLMU)
    code_version = "2"
    batch_extras: ClassVar[dict[str, Callable]] = {}  # no per-split preprocessing
    time_scale_invariant = True  # index time: never reads batch.times

    def __init__(self, num_inputs: int, num_classes: int, hidden_size: int = 256,
                 memory_order: int | None = None, theta: float = 100.0):  # fmt: skip
        super().__init__()
        N = _memory(self, num_inputs, num_classes, hidden_size, memory_order, theta)
        H, C = hidden_size, num_inputs
        self.e_x = nn.Parameter(torch.ones(C))  # hippo-code 'ux': one
        self.e_h = nn.Parameter(torch.zeros(H))  # 'uh': zero
        self.e_m = nn.Parameter(torch.zeros(N))  # 'um': zero
        self.W_x = nn.Parameter(torch.zeros(H, C))  # 'hx': zero
        self.W_m = nn.Parameter(torch.empty(H, N))  # 'hm': xavier (normal)
        self.W_h = nn.Parameter(torch.zeros(H, H))  # 'hh': zero
        self.G = nn.Parameter(torch.empty(H, C + N + H))  # the gate: Linear_, kaiming normal
        nn.init.xavier_normal_(self.W_m)
        nn.init.kaiming_normal_(self.G, nonlinearity="linear")
        self.classifier = nn.Linear(H, num_classes)
        self.hidden_size, self.memory_order = H, N
        self.config = {"num_inputs": C, "num_classes": num_classes, "hidden_size": H, "memory_order": N,
                       "theta": float(theta), "discretization": "zoh", "dt": 1.0, "gate": "sigmoid",
                       "cell": "hippo-code LMUCell", "inputs": "values"}  # fmt: skip

    def forward(self, batch: SequenceBatch) -> Tensor:
        x = batch.values
        H, N, C = self.hidden_size, self.memory_order, x.shape[-1]
        G_x, G_m, G_h = self.G.split([C, N, H], dim=1)
        ex = (x @ self.e_x).unsqueeze(-1).unbind(1)  # (B, 1) per step: input part of u
        xh = F.linear(x, torch.cat([self.W_x, G_x])).unbind(1)  # (B, 2H): input parts of h~, g
        # one matmul per state per step: h -> [W_h h, G_h h, e_h . h], m -> [Ad m, e_m . m],
        # new m -> [W_m m, G_m m]
        h_weights = torch.cat([self.W_h, G_h, self.e_h.unsqueeze(0)])  # (2H + 1, H)
        m_weights = torch.cat([self.Ad, self.e_m.unsqueeze(0)])  # (N + 1, N)
        read_m = torch.cat([self.W_m, G_m])  # (2H, N)
        h, m = self.init_state(x.shape[0], x.device, x.dtype)
        outputs = []
        for ex_t, xh_t in zip(ex, xh, strict=True):
            hp, mp = F.linear(h, h_weights), F.linear(m, m_weights)
            m = torch.addcmul(mp[:, :N], ex_t + hp[:, 2 * H:] + mp[:, N:], self.Bd)
            pre = xh_t + hp[:, : 2 * H] + F.linear(m, read_m)
            g = torch.sigmoid(pre[:, H:])
            h = torch.lerp(h, torch.tanh(pre[:, :H]), g)  # (1 - g) h + g h~
            outputs.append(h)
        return self.classifier(last_valid(torch.stack(outputs, dim=1), batch.lengths))

    # -- streaming: the loop body of forward, one step at a time
    def init_state(self, batch_size: int, device=None, dtype=torch.float32) -> tuple[Tensor, Tensor]:
        """Zero ``(h (B, H), m (B, N))``."""
        h = torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)
        return h, torch.zeros(batch_size, self.memory_order, device=device, dtype=dtype)

    def step(self, values_t: Tensor, times_t: Tensor, state: tuple[Tensor, Tensor]
             ) -> tuple[Tensor, tuple[Tensor, Tensor]]:  # fmt: skip
        """Read ``values_t`` (B, C) (times unused: index time): (logits, new (h, m))."""
        h, m = state
        u = values_t @ self.e_x + h @ self.e_h + m @ self.e_m
        m = m @ self.Ad.T + u[:, None] * self.Bd
        hidden = torch.tanh(F.linear(values_t, self.W_x) + F.linear(m, self.W_m) + F.linear(h, self.W_h))
        g = torch.sigmoid(F.linear(torch.cat([values_t, m, h], dim=-1), self.G))
        h = (1 - g) * h + g * hidden
        return self.classifier(h), (h, m)


@register_model("lmu-voelker", description="LMU, the ungated cell of Voelker et al. 2019 with keras-lmu's initialisation",
                references=hippo_code())
class VoelkerLMU(nn.Module):
    """The LMU paper's cell (module docstring), ungated: ``forward(batch)`` -> logits.

    Sizes as :class:`LMU` (hippo-code's): ``hidden_size`` 256, ``memory_order`` = ``hidden_size``,
    ``theta`` 100 steps, ZOH with dt = 1. (The LMU paper's psMNIST model used hidden 212, order
    256, theta 784.) Initialisation follows keras-lmu: lecun-uniform encoders e_x and e_h, e_m
    zero, Glorot-normal kernels, no biases.
    """

    code_version = "1"
    batch_extras: ClassVar[dict[str, Callable]] = {}  # no per-split preprocessing
    time_scale_invariant = True  # index time: never reads batch.times

    def __init__(
        self,
        num_inputs: int,
        num_classes: int,
        hidden_size: int = 256,
        memory_order: int | None = None,
        theta: float = 100.0,
    ):
        super().__init__()
        memory_order = _memory(self, num_inputs, num_classes, hidden_size, memory_order, theta)
        self.e_x = nn.Parameter(torch.empty(num_inputs))
        self.e_h = nn.Parameter(torch.empty(hidden_size))
        self.e_m = nn.Parameter(torch.zeros(memory_order))
        self.W_x = nn.Parameter(torch.empty(hidden_size, num_inputs))
        self.W_h = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.W_m = nn.Parameter(torch.empty(hidden_size, memory_order))
        nn.init.uniform_(self.e_x, -math.sqrt(3 / num_inputs), math.sqrt(3 / num_inputs))
        nn.init.uniform_(self.e_h, -math.sqrt(3 / hidden_size), math.sqrt(3 / hidden_size))
        for w in (self.W_x, self.W_h, self.W_m):
            nn.init.xavier_normal_(w)
        self.classifier = nn.Linear(hidden_size, num_classes)
        self.hidden_size = hidden_size
        self.memory_order = memory_order
        self.config = {
            "num_inputs": num_inputs,
            "num_classes": num_classes,
            "hidden_size": hidden_size,
            "memory_order": memory_order,
            "theta": float(theta),
            "discretization": "zoh",
            "dt": 1.0,
            "cell": "Voelker et al. (ungated)",
            "inputs": "values",
        }

    def forward(self, batch: SequenceBatch) -> Tensor:
        x = batch.values
        b = x.shape[0]
        H, N = self.hidden_size, self.memory_order
        ex = (x @ self.e_x).unsqueeze(-1).unbind(1)  # (B, 1) per step: input part of u
        wx = F.linear(x, self.W_x).unbind(1)  # (B, H) per step: input part of h
        # one matmul per state per step: h -> [W_h h, e_h . h], m -> [Ad m, e_m . m]
        h_weights = torch.cat([self.W_h, self.e_h.unsqueeze(0)], dim=0)  # (H + 1, H)
        m_weights = torch.cat([self.Ad, self.e_m.unsqueeze(0)], dim=0)  # (N + 1, N)
        h = x.new_zeros(b, H)
        m = x.new_zeros(b, N)
        outputs = []
        for ex_t, wx_t in zip(ex, wx, strict=True):
            hp = F.linear(h, h_weights)
            mp = F.linear(m, m_weights)
            u = ex_t + hp[:, H:] + mp[:, N:]
            m = torch.addcmul(mp[:, :N], u, self.Bd)
            h = torch.tanh(wx_t + hp[:, :H] + F.linear(m, self.W_m))
            outputs.append(h)
        return self.classifier(last_valid(torch.stack(outputs, dim=1), batch.lengths))

    # -- streaming: the loop body of forward, one step at a time
    def init_state(self, batch_size: int, device=None, dtype=torch.float32
                   ) -> tuple[Tensor, Tensor]:
        """Zero ``(h (B, H), m (B, N))``."""
        h = torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)
        return h, torch.zeros(batch_size, self.memory_order, device=device, dtype=dtype)

    def step(self, values_t: Tensor, times_t: Tensor, state: tuple[Tensor, Tensor]
             ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Read ``values_t`` (B, C) (times unused: index time): (logits, new (h, m))."""
        h, m = state
        u = values_t @ self.e_x + h @ self.e_h + m @ self.e_m
        m = m @ self.Ad.T + u[:, None] * self.Bd
        h = torch.tanh(F.linear(values_t, self.W_x) + F.linear(h, self.W_h)
                       + F.linear(m, self.W_m))
        return self.classifier(h), (h, m)


def _drop_fixed_matrices(module, state_dict, prefix, *args) -> None:
    """Load-state-dict pre-hook: ignore ``Ad``/``Bd`` in checkpoints saved when they were
    persistent buffers (a strict load would otherwise fail on them as unexpected keys)."""
    for name in ("Ad", "Bd"):
        state_dict.pop(prefix + name, None)
