"""GRU-Δt and the "decay" GRU-D: the two GRU rows of the Neural CDE paper's Table 1 (Kidger et al.
2020; patrick-kidger/NeuralCDE, ``experiments/models/other.py``: ``GRU_dt`` and ``GRU_D``).

Both update a ``GRUCell`` only at the steps where something was observed and hold h in between.
At an observed step k the cell reads ``[x_k, Δt_k]``, where ``Δt_k = t_k - t_j`` is the time
since the previous observation j (``t_k - t_0`` at the first). The "decay" variant also decays h
at every step by the gap since the previous step, before the update::

    h <- h * exp(-relu(w * (t_k - t_{k-1}) + b))      # w, b: nn.Linear(1, H), as the reference

This is the reference's GRU-D ("decay"), not Che et al.'s full model (``baselines.gru_d``): no
input decay, no mask input. The classifier reads h at each series' last observation
(:func:`bench.models.base.observed_lengths`), and training adds the experiments' penalty
``0.03 * sum ||p||`` over every parameter.

Deviation, stated: the reference's ``_step`` adds its accumulated gap to ``Xi_piece[:, 0]``,
which under its ``use_intensity=False`` is the first *value* channel (the time channel was meant),
and the accumulator is never reset after an observation; here the cell reads the time since the
previous observation as an input of its own, which is what the paper describes (GRU-Δt: "the
time difference between observations as an additional input").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.batch import SequenceBatch
from bench.models.base import check_sizes, last_valid, observed_lengths, weight_norm_penalty
from bench.models.registry import register_model

from .common import check_penalty, gru_step
from .references import ncde_experiments


def time_since_observation(times: Tensor, observed: Tensor) -> Tensor:
    """``(B, L)``: ``t_k`` minus the time of the last observation strictly before step k
    (``t_k - t_0`` when there was none). ``times`` ``(B, L)`` float, ``observed`` ``(B, L)`` bool."""
    steps = torch.arange(times.shape[1], device=times.device).expand_as(observed)
    last = torch.where(observed, steps, torch.zeros_like(steps)).cummax(dim=1).values
    before = F.pad(last[:, :-1], (1, 0), value=0)
    return times - times.gather(1, before)


@register_model("gru-decay", description="GRU-D as the Neural CDE experiments run it ('decay'): GRU-Δt with h decayed by "
                "each gap", references=ncde_experiments({"hidden_size": 47}, paper_table=True), tags=("missing",),
                decay=True)
@register_model("gru-dt", description="GRU-Δt (the Neural CDE paper's): GRU at observations, reading the time since the "
                "previous one", references=ncde_experiments({"hidden_size": 47}, paper_table=True), tags=("missing",))
class GRUDeltaT(nn.Module):
    """GRU-Δt (``decay=False``) or the Neural CDE experiments' decay GRU-D (``decay=True``).

    ``forward(batch)`` -> logits ``(B, num_classes)``. ``hidden_size`` 47 is the experiments'
    setting for both (parameter-matched to their 32-channel Neural CDE). ``weight_penalty``
    scales the training penalty (0.03 in the experiments; 0 turns it off).
    """

    code_version = "1"
    batch_extras: ClassVar[dict[str, Callable]] = {}  # no per-split preprocessing

    def __init__(self, num_inputs: int, num_classes: int, hidden_size: int = 47,
                 decay: bool = False, weight_penalty: float = 0.03):  # fmt: skip
        super().__init__()
        check_sizes("GRUDeltaT", num_inputs=num_inputs, num_classes=num_classes, hidden_size=hidden_size)
        self.weight_penalty = check_penalty("GRUDeltaT", weight_penalty)
        self.cell = nn.GRUCell(num_inputs + 1, hidden_size)  # input [x, Δt]
        self.decay = nn.Linear(1, hidden_size) if decay else None
        self.classifier = nn.Linear(hidden_size, num_classes)
        self.hidden_size = hidden_size
        self.config = {
            "num_inputs": num_inputs,
            "num_classes": num_classes,
            "hidden_size": hidden_size,
            "decay": bool(decay),
            "inputs": "values and time since the previous observation, at observed steps",
            "readout": "last observation",
            "weight_penalty": self.weight_penalty,
        }

    def regularization(self) -> Tensor:
        """``weight_penalty * sum ||p||`` over every parameter, added to the training loss."""
        return weight_norm_penalty(self, self.weight_penalty)

    def forward(self, batch: SequenceBatch) -> Tensor:
        lengths = observed_lengths(batch.mask, batch.lengths)
        end = int(lengths.max())  # nothing after the batch's last observation is read
        values, observed = batch.values[:, :end], batch.mask[:, :end].any(dim=-1)
        times = batch.times[:, :end].to(values.dtype)
        inputs = torch.cat([values, time_since_observation(times, observed).unsqueeze(-1)], dim=-1)
        gi = F.linear(inputs, self.cell.weight_ih, self.cell.bias_ih)  # (B, L, 3H), one matmul
        if self.decay is not None:  # one factor per step and unit: exp(-relu(w gap + b))
            gaps = F.pad(times.diff(dim=1), (1, 0)).unsqueeze(-1)  # (B, L, 1); no decay at step 0
            factors = torch.exp(-torch.relu(self.decay(gaps))).unbind(1)
        h = values.new_zeros(values.shape[0], self.hidden_size)
        outputs = []
        for k, (gi_k, seen) in enumerate(zip(gi.unbind(1), observed.unsqueeze(-1).unbind(1), strict=True)):
            if self.decay is not None and k > 0:
                h = h * factors[k]
            h = torch.where(seen, gru_step(gi_k, h, self.cell), h)
            outputs.append(h)
        return self.classifier(last_valid(torch.stack(outputs, dim=1), lengths))
