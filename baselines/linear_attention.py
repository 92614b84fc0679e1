"""Gated linear attention (``gla``, Yang et al. 2024) and Gated DeltaNet (``gated-deltanet``,
Yang et al. 2025), in pure torch: a chunked form (matmul-heavy, the default) and a recurrent
form (one step at a time, the reference), on the pre-norm body of :mod:`baselines.attention`.

**Kernels** (heads ``H``, key size ``K``, value size ``V``; inputs ``(B, H, L, .)``; the state
``S`` is ``(B, H, K, V)``, flash-linear-attention's ``h``; ``q`` is scaled by ``scale``, default
``K^-1/2``):

- GLA (:func:`gla_recurrent`, :func:`gla_chunked`): a data-dependent decay per key channel,
  ``log_a_t = g_t`` (B, H, L, K), ``g <= 0``::

      S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T,      o_t = S_t^T (scale q_t)

  as fla's ``naive_recurrent_gla``. Chunked (chunk ``C``, within-chunk cumulative log decay
  ``G``): the inter-chunk part is ``(q exp(G)) S_0``, the state passes on as
  ``diag(exp(G_C)) S_0 + (k exp(G_C - G))^T v``, and the intra-chunk scores
  ``A[t, s] = sum_d q_td k_sd exp(G_td - G_sd)`` (``s <= t``) are computed pairwise per channel,
  exponentiating differences only (every exponent ``<= 0``, so no overflow whatever the gates).
  That pairwise term costs ``C K`` per step and memory ``(C, C, K)`` per chunk, so the default
  chunk is small, 8 (one training step of one layer at d_model 128, batch 64, L 182 on one CPU
  thread: 0.32 s at chunk 8 against 0.54 s at 16; the GLA paper's two-level tiling, pairwise
  only within sub-chunks of 16, is a GPU kernel's and not done here).
- Gated delta rule (:func:`gated_delta_recurrent`, :func:`gated_delta_chunked`): a scalar decay
  per head ``g_t`` (B, H, L) and a write strength ``beta_t`` (B, H, L)::

      S_t = exp(g_t) S_{t-1} + k_t u_t^T,  u_t = beta_t (v_t - exp(g_t) S_{t-1}^T k_t),
      o_t = S_t^T (scale q_t)

  as fla's ``naive_recurrent_gated_delta_rule``. Chunked, the WY form of fla's
  ``naive_chunk_gated_delta_rule`` with the forward substitution replaced by one triangular
  solve: per chunk ``(I + A) W = [beta v, beta exp(G) k]`` with
  ``A[t, s] = beta_t exp(G_t - G_s) k_t . k_s`` (``s < t``), then ``U = W_v - W_k S_0``,
  ``o = (q exp(G)) S_0 + (q k^T * exp(G_t - G_s))_{s <= t} U`` and
  ``S_C = exp(G_C) S_0 + (k exp(G_C - G))^T U``. Default chunk 64 (fla's).

Lengths that the chunk does not divide are zero-padded at the end (zero keys and values, zero
log decay, zero beta: the padded steps write nothing and decay nothing) and cut off. Both forms
are tested against each other to 1e-10 in float64 (values, states and gradients; measured
below 3e-14), and against fla's
naive functions when ``fla`` is importable (tests/baselines/test_linear_attention.py).

**Layers** (flash-linear-attention's ``fla/layers/gla.py`` and ``fla/layers/gated_deltanet.py``,
with their defaults; sizes scale with d_model):

- ``GatedLinearAttention``: ``q, k = Linear(d, expand_k d)``, ``v = Linear(d, expand_v d)``
  (expand_k 0.5, expand_v 1; no bias), ``num_heads`` 4; the decay from a low-rank projection
  ``g = logsigmoid(Linear(16, K_total)(Linear(d, 16)(x))) / 16`` (gate_low_rank_dim 16,
  gate_logit_normalizer 16); output ``o_proj(RMSNorm_head(o) * w * silu(g_proj(x)))``
  (fla's ``FusedRMSNormGated``, eps 1e-5). fla's defaults: no short convolution, no feature map.
- ``GatedDeltaNet``: ``q, k = Linear(d, H head_dim)``, ``v = Linear(d, H expand_v head_dim)``
  (no bias), a causal depthwise convolution of width 4 (no bias) and SiLU on each (fla's
  ``ShortConvolution``, on by default), q and k L2-normalised per head (eps 1e-6, fla's
  ``use_qk_l2norm_in_kernel``); ``beta = sigmoid(b_proj(x))``; the decay
  ``g = -exp(A_log) softplus(a_proj(x) + dt_bias)`` with ``A ~ U(0, 16)`` and ``dt_bias`` the
  inverse softplus of ``dt ~ logU[1e-3, 1e-1]`` (fla's ``naive_gdn_gate`` and init); output
  ``o_proj(RMSNorm_head(o) * w * silu(g_proj(x)))``. ``num_heads`` 4; ``head_dim`` defaults to
  ``round(0.75 d / num_heads)`` (fla's parameter allocation ``num_heads * head_dim = 0.75
  hidden``), expand_v 2.

Simplifications against fla: one head count for keys and values (no grouped-query or
grouped-value heads, no ``allow_neg_eigval``, no GLA ``clamp_min``); the RMSNorm weight is
per head channel and shared by the heads, as fla's; the three short convolutions are one depthwise
convolution over the concatenated q, k, v channels (the same function). fla's full models add a
SwiGLU MLP per block; this body uses the transformer's GELU MLP for all three models, so the
mixers are compared alone.

**Time.** Neither model reads ``batch.times`` (``time_scale_invariant``): like the LSTM they see
samples. **Streaming**: ``init_state``/``step`` on the recurrent form; the state per layer is
``S`` (B, H, K, V), plus Gated DeltaNet's convolution window (B, channels, 3);
:meth:`~baselines.attention.SequenceBody.state_size` counts it (and the mean readout's sum).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.models.base import check_sizes
from bench.models.registry import register_model

from .attention import SequenceBody
from .references import s4_example

MODES = ("chunk", "recurrent")


def _pad_to(x: Tensor, multiple: int, dim: int) -> Tensor:
    """Zero-pad ``x`` at the end of ``dim`` to a multiple of ``multiple``."""
    pad = (-x.shape[dim]) % multiple
    if not pad:
        return x
    spec = [0, 0] * (x.ndim - 1 - dim % x.ndim) + [0, pad]
    return F.pad(x, spec)


def _chunks(x: Tensor, C: int) -> Tensor:
    """(B, H, L, ...) with L a multiple of C -> (B, H, L / C, C, ...)."""
    return x.reshape(*x.shape[:2], x.shape[2] // C, C, *x.shape[3:])


def _state(state: Tensor | None, q: Tensor, V: int) -> Tensor:
    B, H, _, K = q.shape
    return q.new_zeros(B, H, K, V) if state is None else state.to(q.dtype)


# ---- GLA -------------------------------------------------------------------------------------
def gla_recurrent(q: Tensor, k: Tensor, v: Tensor, g: Tensor, *, scale: float | None = None,
                  state: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """GLA, one step at a time: q, k, g (B, H, L, K), v (B, H, L, V), state (B, H, K, V) ->
    (o (B, H, L, V), final state). ``g`` is the log decay (module docstring)."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    S = _state(state, q, v.shape[-1])
    out = []
    for t in range(q.shape[2]):
        S = S * g[:, :, t, :, None].exp() + k[:, :, t, :, None] * v[:, :, t, None, :]
        out.append((q[:, :, t, None, :] * scale) @ S)
    o = torch.cat(out, dim=2) if out else v.new_zeros(v.shape)
    return o, S


def gla_chunked(q: Tensor, k: Tensor, v: Tensor, g: Tensor, *, chunk: int = 8,
                scale: float | None = None, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """GLA in chunks of ``chunk`` steps (module docstring); same arguments and result as
    :func:`gla_recurrent`."""
    L, K = q.shape[2], q.shape[-1]
    scale = K**-0.5 if scale is None else scale
    S = _state(state, q, v.shape[-1])
    C = chunk
    q, k, v, g = (_chunks(_pad_to(x, C, 2), C) for x in (q * scale, k, v, g))
    G = g.cumsum(-2)  # (B, H, n, C, K): log decay from the chunk's start through each step
    causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    diff = (G[..., :, None, :] - G[..., None, :, :]).masked_fill(~causal[..., None], -math.inf)
    A = (q[..., :, None, :] * k[..., None, :, :] * diff.exp()).sum(-1)  # (B, H, n, C, C)
    o = A @ v
    qg = q * G.exp()
    kg = k * (G[..., -1:, :] - G).exp()
    decay = G[..., -1, :].exp()[..., None]  # (B, H, n, K, 1)
    inter = []
    for i in range(q.shape[2]):
        inter.append(qg[:, :, i] @ S)
        S = decay[:, :, i] * S + kg[:, :, i].transpose(-1, -2) @ v[:, :, i]
    o = o + torch.stack(inter, dim=2)
    return o.flatten(2, 3)[:, :, :L], S


# ---- gated delta rule ------------------------------------------------------------------------
def gated_delta_recurrent(q: Tensor, k: Tensor, v: Tensor, g: Tensor, beta: Tensor, *,
                          scale: float | None = None, state: Tensor | None = None
                          ) -> tuple[Tensor, Tensor]:
    """Gated delta rule, one step at a time: q, k (B, H, L, K), v (B, H, L, V), g and beta
    (B, H, L), state (B, H, K, V) -> (o (B, H, L, V), final state) (module docstring)."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    S = _state(state, q, v.shape[-1])
    out = []
    for t in range(q.shape[2]):
        S = S * g[:, :, t, None, None].exp()
        kt = k[:, :, t, None, :]  # (B, H, 1, K)
        u = beta[:, :, t, None, None] * (v[:, :, t, None, :] - kt @ S)  # (B, H, 1, V)
        S = S + kt.transpose(-1, -2) @ u
        out.append((q[:, :, t, None, :] * scale) @ S)
    o = torch.cat(out, dim=2) if out else v.new_zeros(v.shape)
    return o, S


def gated_delta_chunked(q: Tensor, k: Tensor, v: Tensor, g: Tensor, beta: Tensor, *,
                        chunk: int = 64, scale: float | None = None,
                        state: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Gated delta rule in chunks of ``chunk`` steps, WY form with a triangular solve (module
    docstring); same arguments and result as :func:`gated_delta_recurrent`."""
    L, K, V = q.shape[2], q.shape[-1], v.shape[-1]
    scale = K**-0.5 if scale is None else scale
    S = _state(state, q, V)
    C = chunk
    q, k, v = (_chunks(_pad_to(x, C, 2), C) for x in (q * scale, k, v))
    g, beta = (_chunks(_pad_to(x, C, 2), C) for x in (g, beta))  # (B, H, n, C)
    G = g.cumsum(-1)
    ones = torch.ones(C, C, dtype=torch.bool, device=q.device)
    incl, strict = ones.tril(), ones.tril(-1)
    gamma = (G[..., :, None] - G[..., None, :]).masked_fill(~incl, -math.inf).exp()  # (.., C, C)
    A = (beta[..., None] * (k @ k.transpose(-1, -2)) * gamma).masked_fill(~strict, 0.0)
    eye = torch.eye(C, dtype=q.dtype, device=q.device)
    rhs = torch.cat([beta[..., None] * v, (beta * G.exp())[..., None] * k], dim=-1)
    W = torch.linalg.solve_triangular(A + eye, rhs, upper=False, unitriangular=True)
    Wv, Wk = W.split([V, K], dim=-1)
    P = (q @ k.transpose(-1, -2)) * gamma
    qg = q * G.exp()[..., None]
    kd = k * (G[..., -1:] - G).exp()[..., None]
    decay = G[..., -1].exp()[..., None, None]  # (B, H, n, 1, 1)
    out = []
    for i in range(q.shape[2]):
        U = Wv[:, :, i] - Wk[:, :, i] @ S
        out.append(qg[:, :, i] @ S + P[:, :, i] @ U)
        S = decay[:, :, i] * S + kd[:, :, i].transpose(-1, -2) @ U
    o = torch.stack(out, dim=2).flatten(2, 3)
    return o[:, :, :L], S


# ---- layers ----------------------------------------------------------------------------------
class _GatedOutput(nn.Module):
    """``o_proj(RMSNorm_head(o) * w * silu(g_proj(x)))``: fla's ``FusedRMSNormGated`` + o_proj."""

    def __init__(self, d: int, heads: int, head_v: int, eps: float = 1e-5):
        super().__init__()
        self.heads, self.eps = heads, eps
        self.g_proj = nn.Linear(d, heads * head_v, bias=False)
        self.weight = nn.Parameter(torch.ones(head_v))
        self.o_proj = nn.Linear(heads * head_v, d, bias=False)

    def forward(self, o: Tensor, x: Tensor) -> Tensor:
        """o (B, H, L, V), x (B, L, d) -> (B, L, d)."""
        o = o.transpose(1, 2)  # (B, L, H, V)
        o = o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight
        gate = F.silu(self.g_proj(x)).view(o.shape)
        return self.o_proj((o * gate).flatten(-2))


def _heads(x: Tensor, H: int) -> Tensor:
    """(B, L, H D) -> (B, H, L, D)."""
    return x.view(*x.shape[:2], H, -1).transpose(1, 2)


class _LinearMixer(nn.Module):
    """Shared wrapper: ``forward(x, p)`` runs the chunked or recurrent kernel over (B, L, d),
    ``step(x, p, state)`` the recurrent kernel over one step (``p`` unused: no positions).
    Subclasses define ``project``, ``kernel(inputs, state, mode)`` and ``output``."""

    mode: str
    chunk: int

    def forward(self, x: Tensor, p: Tensor | None = None) -> Tensor:
        o, _ = self.kernel(self.project(x, None)[0], None, self.mode)
        return self.output(o, x)

    def step(self, x: Tensor, p: Tensor | None, state: dict[str, Tensor]) -> tuple[Tensor, dict]:
        inputs, conv = self.project(x[:, None], state.get("conv"))
        o, S = self.kernel(inputs, state["S"], "recurrent")
        new = {"S": S} if conv is None else {"S": S, "conv": conv}
        return self.output(o, x[:, None])[:, 0], new


class GatedLinearAttention(_LinearMixer):
    """fla's ``GatedLinearAttention`` layer, defaults as there (module docstring)."""

    def __init__(self, d: int, *, num_heads: int, expand_k: float, expand_v: float,
                 gate_low_rank_dim: int, gate_logit_normalizer: float, mode: str, chunk: int):
        super().__init__()
        H = num_heads
        self.H, self.mode, self.chunk, self.normalizer = H, mode, chunk, gate_logit_normalizer
        self.K = max(1, round(d * expand_k / H))
        self.V = max(1, round(d * expand_v / H))
        self.q_proj = nn.Linear(d, H * self.K, bias=False)
        self.k_proj = nn.Linear(d, H * self.K, bias=False)
        self.v_proj = nn.Linear(d, H * self.V, bias=False)
        self.gk_proj = nn.Sequential(nn.Linear(d, gate_low_rank_dim, bias=False),
                                     nn.Linear(gate_low_rank_dim, H * self.K))
        self.out = _GatedOutput(d, H, self.V)

    def project(self, x: Tensor, conv: None) -> tuple[tuple[Tensor, ...], None]:
        H = self.H
        g = F.logsigmoid(self.gk_proj(x)) / self.normalizer
        return (_heads(self.q_proj(x), H), _heads(self.k_proj(x), H), _heads(self.v_proj(x), H),
                _heads(g, H)), None

    def kernel(self, inputs, state, mode):
        if mode == "chunk":
            return gla_chunked(*inputs, chunk=self.chunk, state=state)
        return gla_recurrent(*inputs, state=state)

    def output(self, o: Tensor, x: Tensor) -> Tensor:
        return self.out(o, x)

    def init_layer_state(self, batch_size: int, device, dtype) -> dict[str, Tensor]:
        return {"S": torch.zeros(batch_size, self.H, self.K, self.V, dtype=dtype, device=device)}

    def layer_state_size(self, length: int) -> int:
        return self.H * self.K * self.V


class GatedDeltaNet(_LinearMixer):
    """fla's ``GatedDeltaNet`` layer, defaults as there (module docstring)."""

    def __init__(self, d: int, *, num_heads: int, head_dim: int, expand_v: float, conv_size: int,
                 mode: str, chunk: int, dt_min: float = 1e-3, dt_max: float = 1e-1):
        super().__init__()
        H = num_heads
        self.H, self.K, self.V = H, head_dim, max(1, round(head_dim * expand_v))
        self.mode, self.chunk, self.conv_size = mode, chunk, conv_size
        self.q_proj = nn.Linear(d, H * self.K, bias=False)
        self.k_proj = nn.Linear(d, H * self.K, bias=False)
        self.v_proj = nn.Linear(d, H * self.V, bias=False)
        self.a_proj = nn.Linear(d, H, bias=False)
        self.b_proj = nn.Linear(d, H, bias=False)
        self.channels = H * (2 * self.K + self.V)
        self.conv = nn.Conv1d(self.channels, self.channels, conv_size, groups=self.channels,
                              bias=False)
        self.A_log = nn.Parameter(torch.log(torch.empty(H).uniform_(0, 16)))
        dt = torch.exp(torch.rand(H) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=1e-4)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
        self.out = _GatedOutput(d, H, self.V)

    def project(self, x: Tensor, conv: Tensor | None) -> tuple[tuple[Tensor, ...], Tensor | None]:
        """x (B, L, d), conv window (B, channels, conv_size - 1) or None (start of sequence) ->
        ((q, k, v, g, beta) in heads, the new window if one was given)."""
        H = self.H
        qkv = torch.cat([self.q_proj(x), self.k_proj(x), self.v_proj(x)], dim=-1).transpose(1, 2)
        if conv is None:
            window = F.pad(qkv, (self.conv_size - 1, 0))
        else:
            window = torch.cat([conv, qkv], dim=-1)
        qkv = F.silu(self.conv(window)).transpose(1, 2)  # (B, L, channels)
        new_conv = None if conv is None else window[..., window.shape[-1] - self.conv_size + 1:]
        q, k, v = qkv.split([H * self.K, H * self.K, H * self.V], dim=-1)
        q, k = (F.normalize(_heads(z, H), dim=-1, eps=1e-6) for z in (q, k))
        beta = torch.sigmoid(self.b_proj(x)).transpose(1, 2)  # (B, H, L)
        g = (-self.A_log.exp() * F.softplus(self.a_proj(x) + self.dt_bias)).transpose(1, 2)
        return (q, k, _heads(v, H), g, beta), new_conv

    def kernel(self, inputs, state, mode):
        if mode == "chunk":
            return gated_delta_chunked(*inputs, chunk=self.chunk, state=state)
        return gated_delta_recurrent(*inputs, state=state)

    def output(self, o: Tensor, x: Tensor) -> Tensor:
        return self.out(o, x)

    def init_layer_state(self, batch_size: int, device, dtype) -> dict[str, Tensor]:
        return {"S": torch.zeros(batch_size, self.H, self.K, self.V, dtype=dtype, device=device),
                "conv": torch.zeros(batch_size, self.channels, self.conv_size - 1, dtype=dtype,
                                    device=device)}

    def layer_state_size(self, length: int) -> int:
        return self.H * self.K * self.V + self.channels * (self.conv_size - 1)


def _check_mode(name: str, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"{name}: mode must be one of {', '.join(MODES)}, got {mode!r}")


class _LinearAttentionBody(SequenceBody):
    code_version = "1"
    time_scale_invariant = True  # never reads batch.times
    uses_positions = False


@register_model("gla", description="gated linear attention (Yang et al. 2024), fla's layer, "
                "pure-torch chunked form, 4 layers", references=s4_example(), tags=("throughput",))
class GLAClassifier(_LinearAttentionBody):
    """Gated linear attention (module docstring): ``num_heads`` 4, ``expand_k`` 0.5,
    ``expand_v`` 1, ``mode`` chunk (default, ``chunk`` 8 steps) or recurrent."""

    def __init__(self, num_inputs: int, num_classes: int, hidden_size: int = 128, *,
                 n_layers: int = 4, num_heads: int = 4, expand_k: float = 0.5,
                 expand_v: float = 1.0, gate_low_rank_dim: int = 16,
                 gate_logit_normalizer: float = 16.0, mlp_ratio: int = 4, dropout: float = 0.1,
                 readout: str = "mean", mode: str = "chunk", chunk: int = 8):
        super().__init__()
        check_sizes("GLAClassifier", num_heads=num_heads, gate_low_rank_dim=gate_low_rank_dim,
                    chunk=chunk)
        _check_mode("GLAClassifier", mode)
        if not (expand_k > 0 and expand_v > 0 and gate_logit_normalizer > 0):
            raise ValueError(f"GLAClassifier: expand_k, expand_v and gate_logit_normalizer must be "
                             f"positive, got {expand_k}, {expand_v}, {gate_logit_normalizer}")
        self._build_body(num_inputs, num_classes, hidden_size, n_layers, mlp_ratio, dropout,
                         readout, 1.0, False, lambda: GatedLinearAttention(
                             hidden_size, num_heads=num_heads, expand_k=expand_k,
                             expand_v=expand_v, gate_low_rank_dim=gate_low_rank_dim,
                             gate_logit_normalizer=gate_logit_normalizer, mode=mode, chunk=chunk))
        m = self.mixers[0]
        self.config.update(family="gla", num_heads=num_heads, head_k_dim=m.K, head_v_dim=m.V,
                           expand_k=expand_k, expand_v=expand_v,
                           gate_low_rank_dim=gate_low_rank_dim,
                           gate_logit_normalizer=gate_logit_normalizer, mode=mode, chunk=chunk)


@register_model("gated-deltanet", description="Gated DeltaNet (Yang et al. 2025, gated delta rule), "
                "fla's layer, pure-torch chunked form, 4 layers", references=s4_example(),
                tags=("throughput",))
class GatedDeltaNetClassifier(_LinearAttentionBody):
    """Gated DeltaNet (module docstring): ``num_heads`` 4, ``head_dim`` (default
    ``round(0.75 d / num_heads)``), ``expand_v`` 2, ``conv_size`` 4, ``mode`` chunk (default,
    ``chunk`` 64 steps) or recurrent."""

    def __init__(self, num_inputs: int, num_classes: int, hidden_size: int = 128, *,
                 n_layers: int = 4, num_heads: int = 4, head_dim: int | None = None,
                 expand_v: float = 2.0, conv_size: int = 4, mlp_ratio: int = 4,
                 dropout: float = 0.1, readout: str = "mean", mode: str = "chunk",
                 chunk: int = 64):
        super().__init__()
        check_sizes("GatedDeltaNetClassifier", num_heads=num_heads, conv_size=conv_size,
                    chunk=chunk)
        head_dim = max(1, round(0.75 * hidden_size / num_heads)) if head_dim is None else head_dim
        check_sizes("GatedDeltaNetClassifier", head_dim=head_dim)
        _check_mode("GatedDeltaNetClassifier", mode)
        if not expand_v > 0:
            raise ValueError(f"GatedDeltaNetClassifier: expand_v must be positive, got {expand_v}")
        self._build_body(num_inputs, num_classes, hidden_size, n_layers, mlp_ratio, dropout,
                         readout, 1.0, False, lambda: GatedDeltaNet(
                             hidden_size, num_heads=num_heads, head_dim=head_dim,
                             expand_v=expand_v, conv_size=conv_size, mode=mode, chunk=chunk))
        self.config.update(family="gated-deltanet", num_heads=num_heads, head_dim=head_dim,
                           head_v_dim=self.mixers[0].V, expand_v=expand_v, conv_size=conv_size,
                           mode=mode, chunk=chunk)


__all__ = ["GLAClassifier", "GatedDeltaNet", "GatedDeltaNetClassifier", "GatedLinearAttention",
           "gated_delta_chunked", "gated_delta_recurrent", "gla_chunked", "gla_recurrent"]
