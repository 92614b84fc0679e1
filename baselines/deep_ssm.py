"""Deep state-space models: S4D (HiPPO-initialised), LSSL (fixed HiPPO-LegS A) and a
Mamba-style selective SSM, on one shared deep body, with zero-shot sampling-rate change.

**Body** (shared): ``Linear(C, d_model)`` encoder; ``n_layers`` residual blocks
``x <- x + Dropout(Mixer(LayerNorm(x)))`` (pre-norm; ``prenorm=False`` gives S4's post-norm
``x <- LayerNorm(x + Dropout(Mixer(x)))``); a final LayerNorm (pre-norm only); a readout over
the valid steps: ``readout="mean"`` (masked mean over ``t < lengths``, S4's pooling) or
``"last"`` (the features at ``lengths - 1``); a linear decoder. ``hidden_size`` is d_model.

**Mixers** (per block):

- S4D / LSSL: per channel an SSM convolution ``y = K * u + D u`` (causal FFT convolution,
  :func:`hippo.fftconv.causal_conv`), GELU, dropout, ``Linear(d_model, 2 d_model)`` + GLU
  (the layer of state-spaces/s4 ``models/s4/s4d.py``).
  S4D: :func:`hippo.ssm.diag_kernel`, complex diagonal A (N/2 conjugate pairs), ZOH, learned
  A, B, C, D and per-channel ``log_dt ~ U[log dt_min, log dt_max]``; ``init`` legs (S4D-LegS)
  or lin (S4D-Lin), also inv and real. S4D-LegS's B has ``Im B`` clipped to ``[-b_clip,
  b_clip]`` (default 2, as s4's ``nplr('legs', N, B_clip=2.0)``; ``b_clip=None``: unclipped,
  :func:`hippo.ssm.s4d_init`).
  LSSL ("fixed A"): A, B the HiPPO-LegS matrices (:func:`hippo.transition`) used as an LTI
  system, fixed; learned per-channel dt, C and D only. Kernel from the *dense* A
  (:func:`hippo.ssm.dense_kernel`: bilinear per channel, as LSSL, then powers by repeated
  squaring). Not diagonalised: LegS's eigenvector matrix is exponentially ill-conditioned in N,
  so a diagonal form of LegS would lose all precision (the dense route is tested against a
  direct recurrence to 1e-10 in float64 and 1e-4 in float32 at N = 32, L = 300).
- Mamba (``mamba_simple``): ``in_proj`` to ``2 * expand * d_model`` (x, z); causal depthwise
  conv (width ``d_conv`` 4) and SiLU on x; ``x_proj`` to (dt, B, C) with ``dt_rank =
  ceil(d_model / 16)``; ``delta = softplus(dt_proj(dt))`` (bias initialised so that delta
  starts log-uniform in [dt_min, dt_max]); selective scan (:func:`hippo.scan.selective_scan`,
  ZOH on A, Euler on B; ``scan="auto"``: the compiled C++ scan on CPU, the torch one elsewhere) with ``A = -exp(A_log)``, S4D-Real init ``-(n+1)``; ``+ D x``; gate
  ``* SiLU(z)``; ``out_proj``. (No GELU/GLU: Mamba's gate plays that role.)

**Time.** Each model takes ``time_unit``: how many units of ``batch.times`` make one model
step. Every series gets a step multiplier ``m = (sample interval) / time_unit`` and every SSM
step size is scaled by it (S4D and LSSL: ``dt``; Mamba: the input-dependent ``delta``), as S4's
``rate``/S5's ``step_rescale``. The sample interval of series b is
``(t[len-1] - t[0]) / (len - 1)`` from ``batch.times`` (uses only valid steps, so padding
cannot change it; for irregular sampling it is the mean interval); a series of length 1 gets
``m = 1``. Multipliers are rounded to 2^-20 so series at one rate share one kernel (kernels
are computed once per distinct multiplier). Index time (times 0, 1, 2, ...) with the default
``time_unit = 1`` gives ``m = 1``: the model sees steps, and a rate change shifts its
timescale. Physical time with ``time_unit = 1/200`` s: ``m = 1`` at 200 Hz and ``m = 2`` at
100 Hz, so a model trained at one rate runs at another zero-shot. (A physical-time
``time_unit`` with index-time batches would give ``m = 1 / time_unit``: use 1.0 there.)
Mamba's width-4 convolution is not rescaled (it sees samples); with a smooth input its effect
differs between rates only at first order in the sample interval.

**Streaming.** ``init_state(batch_size, device, dtype, sample_interval=None)`` and
``step(values_t (B, C), times_t (B,), state) -> (logits, state)``: logits are what ``forward``
gives for the sequence ending at this step (the mean readout keeps a running sum). The step
multiplier: ``sample_interval`` (in units of times; a float or (B,) tensor) fixes it and
reproduces ``forward`` exactly; without it, step 0 uses ``m = 1`` and step k >= 1 the running
interval ``(t_k - t_0) / k`` (equal to forward's for regular sampling, except the first step).
Dropout is not applied in step mode (it is for inference).

**Defaults**: 4 layers, d_model 128, N = 64 (S4D, LSSL) or 16 (Mamba), dropout 0.1, dt in
[1e-3, 1e-1], as state-spaces/s4 ``example.py`` (n_layers 4, d_model 128, dropout 0.1, lr
0.01, weight decay 0.01) and ``models/s4/s4d.py`` (N 64, dt_min 1e-3, dt_max 1e-1); Mamba's
d_state 16, expand 2, d_conv 4 as ``mamba_simple``. Dropout 0.1 rather than 0: S4's example
uses it on data far larger than CharacterTrajectories' 2000 series, where regularisation
matters more, not less.

**Optimiser** (:meth:`configure_optimizers`): AdamW; the SSM parameters (S4D: log_dt, A, B;
LSSL: log_dt; Mamba: A_log and dt_proj's bias) in their own group at ``min(lr, 1e-3)`` with no
weight decay, as S4's ``setup_optimizer``; cosine annealing over ``total_steps`` (stepped per
optimiser step; S4's example anneals per epoch over its epochs).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.batch import SequenceBatch
from bench.models.base import check_sizes, last_valid
from bench.models.registry import register_model
from hippo.fftconv import causal_conv
from hippo.scan import SCANS, selective_scan, selective_step
from hippo.ssm import (
    DENSE_METHODS,
    DIAG_METHODS,
    INITS,
    dense_discretize,
    dense_kernel,
    diag_discretize,
    diag_kernel,
    diag_output,
    diag_step,
    s4d_init,
)
from hippo.transition import transition

from .references import s4_example

READOUTS = ("mean", "last")
_ROUND = 2.0**20  # multipliers are rounded to 2^-20 (module docstring)


# ---- time ------------------------------------------------------------------------------------
def _round_multiplier(m: Tensor) -> Tensor:
    return torch.round(m * _ROUND) / _ROUND


def rate_multipliers(times: Tensor, lengths: Tensor, time_unit: float) -> Tensor:
    """Per-series step multiplier ``(t[len-1] - t[0]) / (len - 1) / time_unit``, (B,) float64;
    1 for series of length <= 1 (module docstring)."""
    B = times.shape[0]
    if B == 0:
        return times.new_zeros(0, dtype=torch.float64)
    t = times.to(torch.float64)
    n = lengths.to(times.device).long().clamp(min=1, max=times.shape[1])
    last = t[torch.arange(B, device=t.device), n - 1]
    span = (last - t[:, 0]) / (n - 1).clamp(min=1).to(torch.float64)
    m = torch.where(n > 1, span / time_unit, torch.ones_like(span))
    if not bool((m > 0).all()) or not bool(torch.isfinite(m).all()):
        raise ValueError("batch.times must increase over each series' valid steps "
                         "(a step multiplier came out non-positive or non-finite)")
    return _round_multiplier(m)


def _per_multiplier(kernel_fn: Callable[[Tensor], Tensor], mult: Tensor) -> Tensor:
    """Kernels for each series: ``kernel_fn(scales (U,)) -> (U, H, L)`` evaluated once per
    distinct multiplier; returns (H, L) if all series share one, else (B, H, L)."""
    uniq, inverse = torch.unique(mult, return_inverse=True)
    K = kernel_fn(uniq)
    return K[0] if uniq.shape[0] == 1 else K[inverse]


def _check_dt_range(name: str, dt_min: float, dt_max: float) -> None:
    if not (0 < dt_min <= dt_max < math.inf):
        raise ValueError(f"{name}: need 0 < dt_min <= dt_max, got {dt_min}, {dt_max}")


def _log_uniform(n: int, lo: float, hi: float) -> Tensor:
    return torch.rand(n) * (math.log(hi) - math.log(lo)) + math.log(lo)


# ---- mixers ----------------------------------------------------------------------------------
class _ConvMixer(nn.Module):
    """The S4D/LSSL layer around a kernel: ``y = K * u + D u``, GELU, dropout, Linear + GLU.

    Subclasses define ``kernel(scales (U,)) -> (U, H, L)`` (via ``self._L``), ``ssm_step``,
    ``init_ssm_state`` and ``ssm_parameters``.
    """

    def __init__(self, H: int, dropout: float):
        super().__init__()
        self.D = nn.Parameter(torch.randn(H))
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(H, 2 * H)

    def _post(self, y: Tensor) -> Tensor:
        return F.glu(self.out(self.dropout(F.gelu(y))), dim=-1)

    def forward(self, u: Tensor, mult: Tensor) -> Tensor:
        """u (B, L, H), mult (B,) -> (B, L, H)."""
        L = u.shape[1]
        K = _per_multiplier(lambda s: self.kernel(s.to(u.dtype), L), mult)
        y = causal_conv(u, K, dim=1)  # (B, L, H), contiguous
        return self._post(y + u * self.D)

    def step(self, u: Tensor, mult: Tensor, state: Any) -> tuple[Tensor, Any]:
        y, state = self.ssm_step(u, mult.to(u.dtype), state)
        return self._post(y + u * self.D), state


class S4DMixer(_ConvMixer):
    """S4D layer: complex diagonal SSM kernel per channel (see the module docstring)."""

    def __init__(self, H: int, N: int, *, init: str, method: str, dt_min: float,
                 dt_max: float, dropout: float, b_clip: float | None = 2.0):
        super().__init__(H, dropout)
        A, B = s4d_init(init, N, b_clip)
        n = N // 2
        self.method = method
        self.log_dt = nn.Parameter(_log_uniform(H, dt_min, dt_max))
        self.log_A_real = nn.Parameter(torch.log(-A.real).float().expand(H, n).clone())
        self.A_imag = nn.Parameter(A.imag.float().expand(H, n).clone())
        self.B = nn.Parameter(torch.view_as_real(B.to(torch.complex64)).expand(H, n, 2).clone())
        self.C = nn.Parameter(torch.view_as_real(torch.randn(H, n, dtype=torch.complex64)))

    def ssm_parameters(self) -> list[nn.Parameter]:
        return [self.log_dt, self.log_A_real, self.A_imag, self.B]

    def _abc(self):
        A = torch.complex(-torch.exp(self.log_A_real), self.A_imag)
        return A, torch.view_as_complex(self.B), torch.view_as_complex(self.C)

    def kernel(self, scales: Tensor, L: int) -> Tensor:
        A, B, C = self._abc()
        dt = torch.exp(self.log_dt) * scales[:, None]
        return diag_kernel(A, B, C, dt, L, self.method)

    def init_ssm_state(self, batch_size: int, device, dtype) -> Tensor:
        cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        return torch.zeros(batch_size, *self.A_imag.shape, dtype=cdtype, device=device)

    def ssm_step(self, u: Tensor, mult: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        A, B, C = self._abc()
        Abar, Bbar, _ = diag_discretize(A, B, torch.exp(self.log_dt) * mult[:, None],
                                        self.method)
        x = diag_step(x, u, Abar, Bbar)
        return diag_output(x, C), x


class LSSLMixer(_ConvMixer):
    """LSSL layer, "fixed A": HiPPO-LegS (A, B) as an LTI system; learned dt, C, D."""

    def __init__(self, H: int, N: int, *, method: str, dt_min: float, dt_max: float,
                 dropout: float):
        super().__init__(H, dropout)
        A, B = transition("legs", N)
        self.method = method
        # fixed functions of N: not learned, not saved
        self.register_buffer("A", A.float(), persistent=False)
        self.register_buffer("B", B.float(), persistent=False)
        self.log_dt = nn.Parameter(_log_uniform(H, dt_min, dt_max))
        self.C = nn.Parameter(torch.randn(H, N) / math.sqrt(N))

    def ssm_parameters(self) -> list[nn.Parameter]:
        return [self.log_dt]

    def kernel(self, scales: Tensor, L: int) -> Tensor:
        dt = torch.exp(self.log_dt) * scales[:, None]
        return dense_kernel(self.A, self.B, self.C, dt, L, self.method)

    def init_ssm_state(self, batch_size: int, device, dtype) -> dict[str, Tensor | None]:
        x = torch.zeros(batch_size, *self.C.shape, dtype=dtype, device=device)
        return {"x": x, "mult": None, "Ad": None, "Bd": None}

    def ssm_step(self, u: Tensor, mult: Tensor, state: dict) -> tuple[Tensor, dict]:
        Ad, Bd = state["Ad"], state["Bd"]
        if Ad is None or not torch.equal(state["mult"], mult):  # discretise once per rate
            Ad, Bd = dense_discretize(self.A, self.B, torch.exp(self.log_dt) * mult[:, None],
                                      self.method)
        x = (Ad @ state["x"][..., None])[..., 0] + Bd * u[..., None]  # (B, H, N)
        return (x * self.C).sum(-1), {"x": x, "mult": mult, "Ad": Ad, "Bd": Bd}


class MambaMixer(nn.Module):
    """Mamba block (``mamba_simple``) around :func:`hippo.scan.selective_scan` (module docstring)."""

    def __init__(self, H: int, N: int, *, expand: int, d_conv: int, dt_min: float,
                 dt_max: float, scan: str, chunk: int, dropout: float, b_method: str = "euler"):
        super().__init__()
        self.zoh_b = b_method == "zoh"
        Di = expand * H
        self.d_inner, self.d_conv, self.scan, self.chunk = Di, d_conv, scan, chunk
        self.dt_rank = math.ceil(H / 16)
        self.in_proj = nn.Linear(H, 2 * Di, bias=False)
        self.conv = nn.Conv1d(Di, Di, d_conv, groups=Di, padding=0)
        self.x_proj = nn.Linear(Di, self.dt_rank + 2 * N, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, Di)
        bound = self.dt_rank**-0.5
        nn.init.uniform_(self.dt_proj.weight, -bound, bound)
        dt = torch.exp(_log_uniform(Di, dt_min, dt_max)).clamp(min=1e-4)
        with torch.no_grad():  # softplus^-1(dt)
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.log(torch.arange(1, N + 1, dtype=torch.float32))
                                  .expand(Di, N).clone())  # S4D-Real: A = -(n + 1)
        self.D = nn.Parameter(torch.ones(Di))
        self.out_proj = nn.Linear(Di, H, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.N = N

    def ssm_parameters(self) -> list[nn.Parameter]:
        return [self.A_log, self.dt_proj.bias]

    def _delta_bc(self, x: Tensor, mult: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x (..., Di) -> delta (..., Di) scaled by mult (B,), B and C (..., N)."""
        dt, Bm, Cm = self.x_proj(x).split([self.dt_rank, self.N, self.N], dim=-1)
        delta = F.softplus(self.dt_proj(dt))
        shape = (-1,) + (1,) * (delta.ndim - 1)
        return delta * mult.to(delta.dtype).view(shape), Bm, Cm

    def forward(self, u: Tensor, mult: Tensor) -> Tensor:
        """u (B, L, H), mult (B,) -> (B, L, H)."""
        x, z = self.in_proj(u).chunk(2, dim=-1)  # (B, L, Di)
        x = F.silu(self.conv(F.pad(x.transpose(1, 2), (self.d_conv - 1, 0))))  # (B, Di, L)
        delta, Bm, Cm = self._delta_bc(x.transpose(1, 2), mult)
        A = -torch.exp(self.A_log)
        y = selective_scan(x, delta.transpose(1, 2), A, Bm.transpose(1, 2), Cm.transpose(1, 2),
                           mode=self.scan, chunk=self.chunk, zoh_b=self.zoh_b)
        y = (y + x * self.D[:, None]).transpose(1, 2) * F.silu(z)
        return self.out_proj(self.dropout(y))

    def init_ssm_state(self, batch_size: int, device, dtype) -> dict[str, Tensor]:
        return {"conv": torch.zeros(batch_size, self.d_inner, self.d_conv - 1, dtype=dtype,
                                    device=device),
                "x": torch.zeros(batch_size, self.d_inner, self.N, dtype=dtype, device=device)}

    def step(self, u: Tensor, mult: Tensor, state: dict) -> tuple[Tensor, dict]:
        x, z = self.in_proj(u).chunk(2, dim=-1)  # (B, Di)
        window = torch.cat([state["conv"], x[..., None]], dim=-1)  # (B, Di, d_conv)
        x = F.silu((window * self.conv.weight[:, 0]).sum(-1) + self.conv.bias)
        delta, Bm, Cm = self._delta_bc(x, mult)
        y, s = selective_step(state["x"], x, delta, -torch.exp(self.A_log), Bm, Cm, self.zoh_b)
        y = (y + x * self.D) * F.silu(z)
        return self.out_proj(y), {"conv": window[..., 1:], "x": s}


# ---- the shared body -------------------------------------------------------------------------
class _DeepSSM(nn.Module):
    """Deep SSM classifier body (module docstring); subclasses build the mixers."""

    # 2: the compiled CPU selective scan (Mamba) and the single-transform causal convolution
    # (S4D, LSSL): the same functions, float32 results that differ by rounding (1e-7 relative)
    code_version = "2"
    batch_extras: ClassVar[dict[str, Callable]] = {}  # no per-split preprocessing

    def _build_body(self, num_inputs: int, num_classes: int, hidden_size: int, n_layers: int,
                    dropout: float, prenorm: bool, readout: str, time_unit: float,
                    mixer: Callable[[], nn.Module]) -> None:
        name = type(self).__name__
        check_sizes(name, num_inputs=num_inputs, num_classes=num_classes,
                    hidden_size=hidden_size, n_layers=n_layers)
        if readout not in READOUTS:
            raise ValueError(f"{name}: readout must be one of {', '.join(READOUTS)}; "
                             f"got {readout!r}")
        if not (isinstance(time_unit, int | float) and 0 < time_unit < math.inf):
            raise ValueError(f"{name}: time_unit must be a positive number, got {time_unit!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{name}: dropout must be in [0, 1), got {dropout!r}")
        self.prenorm, self.readout, self.time_unit = bool(prenorm), readout, float(time_unit)
        self.encoder = nn.Linear(num_inputs, hidden_size)
        self.mixers = nn.ModuleList([mixer() for _ in range(n_layers)])
        self.norms = nn.ModuleList([nn.LayerNorm(hidden_size) for _ in range(n_layers)])
        self.drop = nn.Dropout(dropout)
        self.final_norm = nn.LayerNorm(hidden_size) if self.prenorm else nn.Identity()
        self.decoder = nn.Linear(hidden_size, num_classes)
        self.config = {
            "num_inputs": num_inputs, "num_classes": num_classes, "hidden_size": hidden_size,
            "d_model": hidden_size, "n_layers": n_layers, "dropout": float(dropout),
            "prenorm": self.prenorm, "readout": readout, "time_unit": self.time_unit,
            "inputs": "values+times",
        }

    # -- whole sequences
    def _block(self, i: int, x: Tensor, mult: Tensor, state: Any = None, step: bool = False):
        z = self.norms[i](x) if self.prenorm else x
        if step:
            z, state = self.mixers[i].step(z, mult, state)
        else:
            z = self.mixers[i](z, mult)
        x = x + self.drop(z)
        return (x if self.prenorm else self.norms[i](x)), state

    def forward(self, batch: SequenceBatch) -> Tensor:
        steps = int(batch.lengths.max()) if len(batch) else 1
        steps = max(1, min(steps, batch.values.shape[1]))
        x = self.encoder(batch.values[:, :steps])
        mult = rate_multipliers(batch.times, batch.lengths, self.time_unit).to(x.dtype)
        for i in range(len(self.mixers)):
            x, _ = self._block(i, x, mult)
        x = self.final_norm(x)
        lengths = batch.lengths.to(x.device).clamp(min=1, max=steps)
        if self.readout == "last":
            pooled = last_valid(x, lengths)
        else:
            valid = torch.arange(steps, device=x.device)[None, :] < lengths[:, None]
            pooled = (x * valid[..., None]).sum(1) / lengths[:, None].to(x.dtype)
        return self.decoder(pooled)

    # -- streaming
    def init_state(self, batch_size: int, device=None, dtype=torch.float32, *,
                   sample_interval: float | Tensor | None = None) -> dict[str, Any]:
        """Streaming state for ``batch_size`` series (module docstring, "Streaming")."""
        device = torch.device("cpu") if device is None else torch.device(device)
        fixed = None
        if sample_interval is not None:
            fixed = torch.as_tensor(sample_interval, dtype=torch.float64, device=device)
            fixed = _round_multiplier(fixed.expand(batch_size) / self.time_unit).to(dtype)
        layers = [m.init_ssm_state(batch_size, device, dtype) for m in self.mixers]
        hidden = self.decoder.in_features
        return {"layers": layers, "sum": torch.zeros(batch_size, hidden, dtype=dtype,
                                                     device=device),
                "count": 0, "t0": None, "mult": fixed}

    def step(self, values_t: Tensor, times_t: Tensor, state: dict[str, Any]
             ) -> tuple[Tensor, dict[str, Any]]:
        """Read one step ``values_t`` (B, C) at ``times_t`` (B,): (logits (B, K), new state)."""
        k = state["count"]
        t0 = times_t.to(torch.float64) if k == 0 else state["t0"]
        mult = state["mult"]
        if mult is None:
            if k == 0:
                mult = torch.ones(values_t.shape[0], dtype=values_t.dtype, device=values_t.device)
            else:
                mult = _round_multiplier((times_t.to(torch.float64) - t0) / k / self.time_unit)
                mult = mult.to(values_t.dtype)
        x = self.encoder(values_t)
        layers = []
        for i, s in enumerate(state["layers"]):
            x, s = self._block(i, x, mult, s, step=True)
            layers.append(s)
        feat = self.final_norm(x)
        total = state["sum"] + feat
        pooled = feat if self.readout == "last" else total / (k + 1)
        new = {"layers": layers, "sum": total, "count": k + 1, "t0": t0, "mult": state["mult"]}
        return self.decoder(pooled), new

    # -- optimiser
    def ssm_parameters(self) -> list[nn.Parameter]:
        return [p for m in self.mixers for p in m.ssm_parameters()]

    def configure_optimizers(self, *, lr: float, weight_decay: float, total_steps: int):
        """AdamW with the SSM parameters at ``min(lr, 1e-3)`` and no weight decay; a cosine
        schedule over ``total_steps``, stepped per optimiser step (module docstring)."""
        special = {id(p) for p in self.ssm_parameters()}
        ssm = [p for p in self.parameters() if id(p) in special]
        rest = [p for p in self.parameters() if id(p) not in special]
        opt = torch.optim.AdamW([
            {"params": rest, "lr": lr, "weight_decay": weight_decay},
            {"params": ssm, "lr": min(lr, 1e-3), "weight_decay": 0.0},
        ])
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, int(total_steps)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


@register_model("s4d-lin", description="S4D with S4D-Lin init (-1/2 + i pi n)", references=s4_example(),
                tags=("mnist", "throughput", "deep-ssm"), init="lin")
@register_model("s4d", description="S4D (diagonal SSM, S4D-LegS init), 4 layers, FFT convolution", references=s4_example(),
                tags=("mnist", "missing", "throughput", "deep-ssm"), init="legs")
class S4DClassifier(_DeepSSM):
    """S4D (diagonal SSM, HiPPO-derived init): ``init`` legs (S4D-LegS), lin, inv or real;
    ``method`` zoh (default, as S4D) or bilinear. ``state_size`` N (N/2 conjugate pairs).
    ``b_clip``: S4D-LegS clips ``Im B`` to ``[-b_clip, b_clip]`` (2, as s4; None: unclipped)."""

    # Per-init bumps on top of code_version (the registry versions each entry by its init):
    # legs 2: B clipped as s4's (Im B in [-2, 2]; before, unclipped: sum |B|^2 = N^2/2).
    init_versions: ClassVar[dict[str, str]] = {"legs": "2"}

    @classmethod
    def version_for(cls, init: str = "legs", **_fixed: object) -> str:
        """The code version of the registry entry with this ``init``: ``code_version``, plus the
        init's own bump if it has one (S4D-Lin computes what it did: its records stay current)."""
        bump = cls.init_versions.get(init)
        return cls.code_version if bump is None else f"{cls.code_version}+{init}.{bump}"

    def __init__(self, num_inputs: int, num_classes: int, hidden_size: int = 128, *,
                 n_layers: int = 4, state_size: int = 64, dropout: float = 0.1,
                 prenorm: bool = True, readout: str = "mean", time_unit: float = 1.0,
                 init: str = "legs", method: str = "zoh", dt_min: float = 1e-3,
                 dt_max: float = 1e-1, b_clip: float | None = 2.0):
        super().__init__()
        check_sizes("S4DClassifier", state_size=state_size)
        if init not in INITS or method not in DIAG_METHODS or state_size % 2:
            raise ValueError(f"S4DClassifier: init in {INITS}, method in {DIAG_METHODS}, even "
                             f"state_size; got {init!r}, {method!r}, {state_size}")
        _check_dt_range("S4DClassifier", dt_min, dt_max)
        if b_clip is not None and not (isinstance(b_clip, int | float) and 0 < b_clip < math.inf):
            raise ValueError(f"S4DClassifier: b_clip must be a positive number or None, got {b_clip!r}")
        self._build_body(num_inputs, num_classes, hidden_size, n_layers, dropout, prenorm,
                         readout, time_unit, lambda: S4DMixer(
                             hidden_size, state_size, init=init, method=method, dt_min=dt_min,
                             dt_max=dt_max, dropout=dropout, b_clip=b_clip))
        self.config.update(family="s4d", state_size=state_size, init=init, method=method,
                           dt_min=dt_min, dt_max=dt_max, b_clip=b_clip)


@register_model("lssl", description="LSSL, fixed HiPPO-LegS A (learned dt, C, D), dense kernel", references=s4_example(),
                tags=("mnist", "throughput", "deep-ssm"))
class LSSLClassifier(_DeepSSM):
    """LSSL, "fixed A" (HiPPO-LegS as an LTI system; learned dt, C, D); ``method`` bilinear
    (default, as LSSL) or zoh. ``state_size`` N is LegS's order."""

    def __init__(self, num_inputs: int, num_classes: int, hidden_size: int = 128, *,
                 n_layers: int = 4, state_size: int = 64, dropout: float = 0.1,
                 prenorm: bool = True, readout: str = "mean", time_unit: float = 1.0,
                 method: str = "bilinear", dt_min: float = 1e-3, dt_max: float = 1e-1):
        super().__init__()
        check_sizes("LSSLClassifier", state_size=state_size)
        if method not in DENSE_METHODS:
            raise ValueError(f"LSSLClassifier: method must be one of {DENSE_METHODS}, "
                             f"got {method!r}")
        _check_dt_range("LSSLClassifier", dt_min, dt_max)
        self._build_body(num_inputs, num_classes, hidden_size, n_layers, dropout, prenorm,
                         readout, time_unit, lambda: LSSLMixer(
                             hidden_size, state_size, method=method, dt_min=dt_min,
                             dt_max=dt_max, dropout=dropout))
        self.config.update(family="lssl", state_size=state_size, A="legs (fixed)",
                           method=method, dt_min=dt_min, dt_max=dt_max)


@register_model("mamba", description="Mamba-style selective SSM (S4D-Real A, compiled CPU scan)", references=s4_example(),
                tags=("mnist", "throughput", "deep-ssm"))
class MambaClassifier(_DeepSSM):
    """Mamba-style selective SSM (module docstring): ``state_size`` d_state (16), ``expand``
    2, ``d_conv`` 4; ``scan`` auto (default: compiled on CPU, fast elsewhere), compiled, fast,
    chunked or sequential (the reference loop: see :mod:`hippo.scan`);
    ``b_method`` euler (default, as Mamba: ``delta B u``) or zoh (``(exp(delta A) - 1)/A B u``,
    which keeps fast modes' gain independent of the step: see :mod:`hippo.scan`)."""

    def __init__(self, num_inputs: int, num_classes: int, hidden_size: int = 128, *,
                 n_layers: int = 4, state_size: int = 16, dropout: float = 0.1,
                 prenorm: bool = True, readout: str = "mean", time_unit: float = 1.0,
                 expand: int = 2, d_conv: int = 4, scan: str = "auto", chunk: int = 32,
                 b_method: str = "euler", dt_min: float = 1e-3, dt_max: float = 1e-1):
        super().__init__()
        check_sizes("MambaClassifier", state_size=state_size, expand=expand, d_conv=d_conv,
                    chunk=chunk)
        if scan not in SCANS:
            raise ValueError(f"MambaClassifier: scan must be one of {SCANS}, got {scan!r}")
        if b_method not in ("euler", "zoh"):
            raise ValueError(f"MambaClassifier: b_method must be euler or zoh, got {b_method!r}")
        _check_dt_range("MambaClassifier", dt_min, dt_max)
        self._build_body(num_inputs, num_classes, hidden_size, n_layers, dropout, prenorm,
                         readout, time_unit, lambda: MambaMixer(
                             hidden_size, state_size, expand=expand, d_conv=d_conv,
                             dt_min=dt_min, dt_max=dt_max, scan=scan, chunk=chunk,
                             dropout=0.0, b_method=b_method))
        self.config.update(family="mamba", state_size=state_size, expand=expand,
                           d_conv=d_conv, scan=scan, chunk=chunk, A="s4d-real", b_method=b_method,
                           dt_min=dt_min, dt_max=dt_max)


__all__ = ["LSSLClassifier", "MambaClassifier", "S4DClassifier", "rate_multipliers"]
