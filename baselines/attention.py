"""A causal transformer (``transformer``), and the pre-norm body it shares with the linear-attention
models (:mod:`baselines.linear_attention`).

**Body** (:class:`SequenceBody`): ``Linear(C, d_model)`` encoder; ``n_layers`` pre-norm blocks
``x <- x + Dropout(Mixer(LayerNorm(x)))``, ``x <- x + Dropout(MLP(LayerNorm(x)))`` with the MLP
``Linear(d, mlp_ratio d)``, GELU, ``Linear(mlp_ratio d, d)`` (Zoology's default state mixer, GPT-2's
block; ``mlp_ratio=0`` drops it); a final LayerNorm; a readout over the valid steps,
``readout="mean"`` (masked mean over ``t < lengths``) or ``"last"`` (the features at
``lengths - 1``), as the deep SSMs (:mod:`baselines.deep_ssm`); a linear decoder. ``hidden_size``
is d_model. Each mixer maps ``(B, L, d) -> (B, L, d)`` causally and has a one-step form.

**Padding.** Every mixer is causal, so the features at a step ``t < lengths`` never read a step
at or past ``lengths``, and both readouts read only such steps: padded steps cannot change the
logits, exactly, with no key-padding mask (the transformer attends with ``is_causal=True`` only).
The per-position features (``SequenceBody.features``) are exact at every valid step for the same
reason, which is what a per-position (token) task will read.

**Transformer** (:class:`CausalSelfAttention`): ``Linear(d, 3d)`` to q, k, v in ``num_heads``
heads, :func:`torch.nn.functional.scaled_dot_product_attention` with ``is_causal=True``, an
output ``Linear(d, d)``. Positions are read from ``batch.times``:
``p = (times - times[:, 0]) / time_unit``, the position of each sample in model steps counted from
the series' first sample. Index time (times 0, 1, 2, ...) with the default ``time_unit = 1``:
``p`` is the sample index. Physical time (seconds): the timescale suite passes ``time_unit`` = one
source sample (1/200 s for CharacterTrajectories, ``bench.suites._time_unit``), so at the source
rate ``p`` is again the sample index and at half the rate a sample sits at ``p = 0, 2, 4, ...``:
continuous-time positions. Either

- ``rope=False`` (default): sinusoidal encodings of ``p`` added to the encoded inputs,
  ``PE(p)[i] = sin(p w_i)`` for the first ``ceil(d/2)`` channels and ``cos(p w_i)`` for the rest,
  ``w_i = 10000^(-2i/d)`` (Vaswani et al. 2017, at real-valued positions); or
- ``rope=True``: no additive encoding; rotary embeddings (Su et al. 2021, the half-split form of
  GPT-NeoX) rotate q and k of every layer by the angles ``p theta_i``, ``theta_i =
  10000^(-2i/d_head)``.

**Streaming.** ``init_state(batch_size, device, dtype)`` and ``step(values_t (B, C), times_t (B,),
state) -> (logits, state)``: the logits ``forward`` gives for the sequence ending at this step.
The transformer keeps a KV cache, per layer ``k`` and ``v`` of shape ``(B, heads, t, d_head)``
(rotated keys under RoPE), the first time ``t0`` (B,) and, for the mean readout, the running sum
of the features (B, d). :meth:`state_size` counts those floats per sequence. Dropout is not applied
in step mode.

**Optimiser** (:meth:`SequenceBody.configure_optimizers`): AdamW with weight decay on the weight
matrices only (biases, norm weights and the gates' decay parameters ``A_log``/``dt_bias`` get none,
as flash-linear-attention's ``_no_weight_decay`` and nanoGPT's grouping); cosine annealing over
``total_steps``, stepped per optimiser step (as the deep SSMs).

**Defaults**: 4 layers, d_model 128, 4 heads, MLP ratio 4, dropout 0.1: the deep SSMs' body
(state-spaces/s4 ``example.py``), so the table compares mixers at one size.
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

from .references import s4_example

READOUTS = ("mean", "last")
# parameter names (last dotted part) that get no weight decay (module docstring, "Optimiser")
NO_DECAY = ("bias", "A_log", "dt_bias")


def check_unit(name: str, time_unit: float) -> float:
    if not (isinstance(time_unit, int | float) and not isinstance(time_unit, bool)
            and 0 < time_unit < math.inf):
        raise ValueError(f"{name}: time_unit must be a positive number, got {time_unit!r}")
    return float(time_unit)


def state_floats(state: Any) -> int:
    """The number of floats the tensors in ``state`` (nested dicts, lists, tuples) hold."""
    if isinstance(state, Tensor):
        return state.numel() if state.is_floating_point() else 0
    if isinstance(state, dict):
        return sum(state_floats(v) for v in state.values())
    if isinstance(state, list | tuple):
        return sum(state_floats(v) for v in state)
    return 0


# ---- positions -------------------------------------------------------------------------------
def sinusoidal(p: Tensor, d: int) -> Tensor:
    """Sinusoidal encodings of real positions ``p`` (...,) -> (..., d) (module docstring)."""
    n = (d + 1) // 2
    w = torch.exp(torch.arange(n, dtype=p.dtype, device=p.device) * (-2.0 * math.log(1e4) / d))
    angle = p[..., None] * w
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1)[..., :d]


def rotate(x: Tensor, p: Tensor) -> Tensor:
    """Rotary embedding of ``x`` (B, H, L, D) at real positions ``p`` (B, L), half-split form."""
    D = x.shape[-1]
    theta = torch.exp(torch.arange(D // 2, dtype=p.dtype, device=p.device) * (-2.0 * math.log(1e4) / D))
    angle = (p[..., None] * theta)[:, None]  # (B, 1, L, D/2)
    cos, sin = torch.cos(angle).to(x.dtype), torch.sin(angle).to(x.dtype)
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


# ---- the transformer's mixer -----------------------------------------------------------------
class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention over (B, L, d), optional RoPE (module docstring)."""

    def __init__(self, d: int, num_heads: int, *, rope: bool, dropout: float):
        super().__init__()
        self.h, self.rope, self.dropout = num_heads, rope, dropout
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def _qkv(self, x: Tensor, p: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        B, L, d = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        if self.rope:
            q, k = rotate(q, p), rotate(k, p)
        return q, k, v

    def forward(self, x: Tensor, p: Tensor) -> Tensor:
        """x (B, L, d), positions p (B, L) -> (B, L, d)."""
        q, k, v = self._qkv(x, p)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).flatten(2))

    def init_layer_state(self, batch_size: int, device, dtype) -> dict[str, Tensor]:
        d = self.out.in_features
        empty = torch.zeros(batch_size, self.h, 0, d // self.h, dtype=dtype, device=device)
        return {"k": empty, "v": empty.clone()}

    def step(self, x: Tensor, p: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict]:
        """x (B, d), p (B,): attend to the cache and this step."""
        q, k, v = self._qkv(x[:, None], p[:, None])
        k, v = torch.cat([state["k"], k], dim=2), torch.cat([state["v"], v], dim=2)
        y = F.scaled_dot_product_attention(q, k, v)  # the query is the newest step: no mask
        return self.out(y[:, :, 0].flatten(1)), {"k": k, "v": v}

    def layer_state_size(self, length: int) -> int:
        return 2 * length * self.out.in_features


# ---- the shared body -------------------------------------------------------------------------
class SequenceBody(nn.Module):
    """Encoder, pre-norm mixer + MLP blocks, readout, decoder (module docstring). Subclasses call
    :meth:`_build_body` with a mixer factory; a mixer has ``forward(x, p)``, ``step(x, p, s)``,
    ``init_layer_state`` and ``layer_state_size(length)``. ``uses_positions``: whether the mixers
    or the encoding read the positions ``p`` (else ``times`` is never read and ``p`` is None)."""

    batch_extras: ClassVar[dict[str, Callable]] = {}  # no per-split preprocessing
    uses_positions: ClassVar[bool] = True

    def _build_body(self, num_inputs: int, num_classes: int, hidden_size: int, n_layers: int,
                    mlp_ratio: int, dropout: float, readout: str, time_unit: float,
                    sinusoidal: bool, mixer: Callable[[], nn.Module]) -> None:
        name = type(self).__name__
        check_sizes(name, num_inputs=num_inputs, num_classes=num_classes,
                    hidden_size=hidden_size, n_layers=n_layers)
        if not isinstance(mlp_ratio, int) or isinstance(mlp_ratio, bool) or mlp_ratio < 0:
            raise ValueError(f"{name}: mlp_ratio must be a non-negative integer, got {mlp_ratio!r}")
        if readout not in READOUTS:
            raise ValueError(f"{name}: readout must be one of {', '.join(READOUTS)}; got {readout!r}")
        if not (isinstance(dropout, int | float) and 0.0 <= dropout < 1.0):
            raise ValueError(f"{name}: dropout must be in [0, 1), got {dropout!r}")
        d = hidden_size
        self.readout, self.time_unit, self.sinusoidal = readout, check_unit(name, time_unit), sinusoidal
        self.encoder = nn.Linear(num_inputs, d)
        self.mixers = nn.ModuleList([mixer() for _ in range(n_layers)])
        self.norms = nn.ModuleList([nn.LayerNorm(d) for _ in range(n_layers)])
        self.mlps = nn.ModuleList([
            nn.Sequential(nn.Linear(d, mlp_ratio * d), nn.GELU(), nn.Linear(mlp_ratio * d, d))
            if mlp_ratio else nn.Identity() for _ in range(n_layers)])  # fmt: skip
        self.mlp_norms = nn.ModuleList([nn.LayerNorm(d) if mlp_ratio else nn.Identity()
                                        for _ in range(n_layers)])
        self.drop = nn.Dropout(dropout)
        self.final_norm = nn.LayerNorm(d)
        self.decoder = nn.Linear(d, num_classes)
        self.config = {
            "num_inputs": num_inputs, "num_classes": num_classes, "hidden_size": d, "d_model": d,
            "n_layers": n_layers, "mlp_ratio": mlp_ratio, "dropout": float(dropout),
            "readout": readout, "inputs": "values+times" if self.uses_positions else "values",
        }
        if self.uses_positions:
            self.config["time_unit"] = self.time_unit

    # -- whole sequences
    def _positions(self, times: Tensor, dtype: torch.dtype) -> Tensor:
        t = times.to(torch.float64)
        return ((t - t[:, :1]) / self.time_unit).to(dtype)

    def _embed(self, values: Tensor, p: Tensor | None) -> Tensor:
        x = self.encoder(values)
        return x + sinusoidal(p, x.shape[-1]) if self.sinusoidal else x

    def features(self, batch: SequenceBatch) -> Tensor:
        """The final-norm features at every step, (B, L', d) with ``L' = max(lengths)``: exact
        at each valid step (module docstring, "Padding")."""
        steps = int(batch.lengths.max()) if len(batch) else 1
        steps = max(1, min(steps, batch.values.shape[1]))
        values = batch.values[:, :steps]
        p = self._positions(batch.times[:, :steps], values.dtype) if self.uses_positions else None
        x = self._embed(values, p)
        for i, mixer in enumerate(self.mixers):
            x = x + self.drop(mixer(self.norms[i](x), p))
            x = x + self.drop(self.mlps[i](self.mlp_norms[i](x)))
        return self.final_norm(x)

    def forward(self, batch: SequenceBatch) -> Tensor:
        x = self.features(batch)
        lengths = batch.lengths.to(x.device).clamp(min=1, max=x.shape[1])
        if self.readout == "last":
            pooled = last_valid(x, lengths)
        else:
            valid = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]
            pooled = (x * valid[..., None]).sum(1) / lengths[:, None].to(x.dtype)
        return self.decoder(pooled)

    # -- streaming
    def init_state(self, batch_size: int, device=None, dtype=torch.float32) -> dict[str, Any]:
        """Streaming state for ``batch_size`` series (module docstring, "Streaming")."""
        device = torch.device("cpu") if device is None else torch.device(device)
        state: dict[str, Any] = {
            "layers": [m.init_layer_state(batch_size, device, dtype) for m in self.mixers],
            "count": 0,
        }
        if self.readout == "mean":
            state["sum"] = torch.zeros(batch_size, self.decoder.in_features, dtype=dtype, device=device)
        if self.uses_positions:
            state["t0"] = None
        return state

    def step(self, values_t: Tensor, times_t: Tensor, state: dict[str, Any]
             ) -> tuple[Tensor, dict[str, Any]]:
        """Read one step ``values_t`` (B, C) at ``times_t`` (B,): (logits (B, K), new state)."""
        new: dict[str, Any] = {"count": state["count"] + 1}
        p = None
        if self.uses_positions:
            new["t0"] = times_t.to(torch.float64) if state["t0"] is None else state["t0"]
            p = ((times_t.to(torch.float64) - new["t0"]) / self.time_unit).to(values_t.dtype)
        x = self._embed(values_t, p)
        layers = []
        for i, (mixer, s) in enumerate(zip(self.mixers, state["layers"], strict=True)):
            z, s = mixer.step(self.norms[i](x), p, s)
            x = x + z
            x = x + self.mlps[i](self.mlp_norms[i](x))
            layers.append(s)
        new["layers"] = layers
        feat = self.final_norm(x)
        if self.readout == "mean":
            new["sum"] = state["sum"] + feat
            feat = new["sum"] / new["count"]
        return self.decoder(feat), new

    def state_size(self, length: int = 1) -> int:
        """Floats of streaming state per sequence after ``length`` steps: every layer's state
        (a KV cache grows with ``length``; a recurrent state does not), plus the mean readout's
        running sum (d_model) and the first time ``t0`` (1, models that read positions). Equal to
        the floats of the tensors :meth:`step` keeps (tests/baselines)."""
        check_sizes(type(self).__name__, length=length)
        total = sum(m.layer_state_size(length) for m in self.mixers)
        if self.readout == "mean":
            total += self.decoder.in_features
        return total + (1 if self.uses_positions else 0)

    # -- optimiser
    def configure_optimizers(self, *, lr: float, weight_decay: float, total_steps: int):
        """AdamW, weight decay on matrices only; cosine over ``total_steps`` (module docstring)."""
        decay, rest = [], []
        for name, p in self.named_parameters():
            plain = p.ndim < 2 or name.rpartition(".")[2] in NO_DECAY
            (rest if plain else decay).append(p)
        opt = torch.optim.AdamW([
            {"params": decay, "lr": lr, "weight_decay": weight_decay},
            {"params": rest, "lr": lr, "weight_decay": 0.0},
        ])
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, int(total_steps)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


@register_model("transformer", description="causal transformer (SDPA), sinusoidal positions of batch.times "
                "(RoPE: rope=True), 4 layers", references=s4_example(), tags=("throughput",))
class TransformerClassifier(SequenceBody):
    """Causal pre-norm transformer (module docstring): ``num_heads`` 4, ``rope`` False
    (sinusoidal positions) or True (rotary), ``time_unit`` units of ``batch.times`` per position."""

    code_version = "1"

    def __init__(self, num_inputs: int, num_classes: int, hidden_size: int = 128, *,
                 n_layers: int = 4, num_heads: int = 4, mlp_ratio: int = 4, dropout: float = 0.1,
                 readout: str = "mean", time_unit: float = 1.0, rope: bool = False):
        super().__init__()
        check_sizes("TransformerClassifier", num_heads=num_heads)
        if hidden_size % num_heads or (rope and (hidden_size // num_heads) % 2):
            raise ValueError(f"TransformerClassifier: hidden_size must be a multiple of num_heads "
                             f"(and give an even head size with rope), got {hidden_size}, {num_heads}")
        self._build_body(num_inputs, num_classes, hidden_size, n_layers, mlp_ratio, dropout,
                         readout, time_unit, not rope, lambda: CausalSelfAttention(
                             hidden_size, num_heads, rope=bool(rope), dropout=dropout))
        self.config.update(family="transformer", num_heads=num_heads, rope=bool(rope),
                           positions="rope" if rope else "sinusoidal")


__all__ = ["CausalSelfAttention", "SequenceBody", "TransformerClassifier", "rotate", "sinusoidal",
           "state_floats"]
