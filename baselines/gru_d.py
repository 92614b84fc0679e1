"""GRU-D (Che, Purushotham, Cho, Sontag, Liu, "Recurrent Neural Networks for Multivariate Time
Series with Missing Values", Scientific Reports 2018).

At step t with values x_t, mask m_t and delta_t (per channel: time since that channel's last
observation before t, from ``batch.times``)::

    gamma_x = exp(-relu(w_gx * delta_t + b_gx))              # diagonal: one weight per channel
    gamma_h = exp(-relu(W_gh delta_t + b_gh))                # full (H x C)
    x_hat   = m_t x_t + (1 - m_t) (gamma_x x_last + (1 - gamma_x) x_mean)
    h       = gamma_h * h
    h       = GRUCell([x_hat, m_t], h)                       # the mask is an input to every gate

The classifier reads h at each series' last observation (the Neural CDE experiments'
``final_index``, :func:`bench.models.base.observed_lengths`), and training adds their penalty
``0.03 * sum ||p||`` over all parameters (:meth:`GRUD.regularization`).

Everything that does not depend on h (deltas, decays, x_hat and the GRU's input projection) is
computed for all steps before the loop, so each step costs one (B, H) x (H, 3H) matmul.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.batch import SequenceBatch
from bench.models.base import check_sizes, last_valid, observed_lengths, weight_norm_penalty
from bench.models.registry import register_model

from .common import check_penalty, gru_step
from .references import ncde_experiments


def last_observation(times: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per channel, the index of the last observation at or before each step, and the delta.

    ``times`` ``(B, L)``, ``mask`` ``(B, L, C)`` -> ``(last_index, delta)``, both ``(B, L, C)``:
    ``last_index`` is -1 before a channel's first observation; ``delta`` follows the paper's
    recursion (``delta_0 = 0``; ``delta_t = s_t - s_{t-1} + delta_{t-1}`` after a missing step,
    ``s_t - s_{t-1}`` after an observed one), i.e. ``s_t`` minus the time of the last observation
    strictly before t, or minus ``s_0`` if there was none.
    """
    b, length, c = mask.shape
    steps = torch.arange(length, device=mask.device).view(1, length, 1).expand(b, length, c)
    last_index = torch.where(mask, steps, torch.full_like(steps, -1)).cummax(dim=1).values
    before = F.pad(last_index[:, :-1], (0, 0, 1, 0), value=-1)  # last observation strictly before t
    times_c = times.unsqueeze(-1).expand(b, length, c)
    before_time = torch.where(before >= 0, times_c.gather(1, before.clamp(min=0)), times_c[:, :1])
    return last_index, times_c - before_time


@register_model("gru-d", description="GRU-D (Che et al. 2018): decays, mean imputation, mask input",
                references=ncde_experiments({"hidden_size": 47}), tags=("timescale", "timestamps", "throughput"))
class GRUD(nn.Module):
    """GRU-D classifier: ``forward(batch)`` -> logits ``(B, num_classes)`` from the last valid h.

    ``hidden_size`` defaults to 47, the Neural CDE experiments' GRU-D setting (parameter-matched to
    their 32-channel Neural CDE), which the HiPPO paper's CharacterTrajectories baselines reused.
    ``x_mean`` (``num_inputs`` floats) is the empirical mean that imputation decays towards; the
    default 0 is the training mean, since the data modules normalise with training statistics.
    It is a buffer, not learned, as in the paper. The GRU gates follow ``torch.nn.GRUCell``.
    ``weight_penalty`` scales the training penalty (0.03 in the experiments; 0 turns it off).
    """

    # 2: read-out at the last observation, and the experiments' weight-norm penalty
    code_version = "2"
    batch_extras: ClassVar[dict[str, Callable]] = {}  # no per-split preprocessing

    def __init__(
        self,
        num_inputs: int,
        num_classes: int,
        hidden_size: int = 47,
        x_mean: Sequence[float] | None = None,
        weight_penalty: float = 0.03,
    ):
        super().__init__()
        self.weight_penalty = check_penalty("GRUD", weight_penalty)
        check_sizes("GRUD", num_inputs=num_inputs, num_classes=num_classes, hidden_size=hidden_size)
        mean = (
            torch.zeros(num_inputs)
            if x_mean is None
            else torch.as_tensor(x_mean, dtype=torch.float32)
        )
        if mean.shape != (num_inputs,):
            raise ValueError(
                f"GRUD: x_mean must hold num_inputs={num_inputs} values, got shape {tuple(mean.shape)}"
            )
        self.register_buffer("x_mean", mean)
        self.w_gamma_x = nn.Parameter(torch.empty(num_inputs))  # diagonal input decay
        self.b_gamma_x = nn.Parameter(torch.zeros(num_inputs))
        self.gamma_h = nn.Linear(num_inputs, hidden_size)  # full hidden decay
        self.cell = nn.GRUCell(2 * num_inputs, hidden_size)  # input [x_hat, mask]
        self.classifier = nn.Linear(hidden_size, num_classes)
        nn.init.uniform_(self.w_gamma_x, -1.0, 1.0)  # as nn.Linear(1, 1) would initialise it
        self.hidden_size = hidden_size
        self.config = {
            "num_inputs": num_inputs,
            "num_classes": num_classes,
            "hidden_size": hidden_size,
            "x_mean": mean.tolist(),
            "inputs": "x_hat, mask, delta(times)",
            "readout": "last observation",
            "weight_penalty": self.weight_penalty,
        }

    def regularization(self) -> Tensor:
        """``weight_penalty * sum ||p||`` over every parameter, added to the training loss."""
        return weight_norm_penalty(self, self.weight_penalty)

    def decays(self, delta: Tensor) -> tuple[Tensor, Tensor]:
        """``delta`` ``(..., C)`` -> ``(gamma_x (..., C), gamma_h (..., H))``."""
        gamma_x = torch.exp(-torch.relu(self.w_gamma_x * delta + self.b_gamma_x))
        gamma_h = torch.exp(-torch.relu(self.gamma_h(delta)))
        return gamma_x, gamma_h

    def impute(self, values: Tensor, mask: Tensor, last_index: Tensor, gamma_x: Tensor) -> Tensor:
        """``x_hat`` ``(B, L, C)``: observed values kept, missing ones decayed from x_last to x_mean."""
        x_last = values.gather(1, last_index.clamp(min=0))
        x_last = torch.where(last_index >= 0, x_last, self.x_mean)  # nothing seen yet: the mean
        decayed = gamma_x * x_last + (1 - gamma_x) * self.x_mean
        return torch.where(mask, values, decayed)

    def forward(self, batch: SequenceBatch) -> Tensor:
        lengths = observed_lengths(batch.mask, batch.lengths)
        end = int(lengths.max())  # nothing after the batch's last observation is read
        mask, values = batch.mask[:, :end], batch.values[:, :end]
        last_index, delta = last_observation(batch.times[:, :end].to(values.dtype), mask)
        gamma_x, gamma_h = self.decays(delta)
        x_hat = self.impute(values, mask, last_index, gamma_x)
        inputs = torch.cat([x_hat, mask.to(x_hat.dtype)], dim=-1)
        gi = F.linear(inputs, self.cell.weight_ih, self.cell.bias_ih)  # (B, L, 3H), one matmul
        h = x_hat.new_zeros(x_hat.shape[0], self.hidden_size)
        outputs = []
        for gi_t, gamma_t in zip(gi.unbind(1), gamma_h.unbind(1), strict=True):
            h = gru_step(gi_t, gamma_t * h, self.cell)
            outputs.append(h)
        return self.classifier(last_valid(torch.stack(outputs, dim=1), lengths))
