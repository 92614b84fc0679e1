"""HiPPO-RNN classifiers (Gu et al., NeurIPS 2020): a :class:`hippo.nn.HiPPORNN` over the values,
a linear read-out of the last valid hidden state.

As in the reference code the network reads the plain values (no mask); with
``timestamped=True`` (LegS only) it also reads ``batch.times`` to set each memory step
``(t_k - t_{k-1}) / t_k``, which is the reference's "tlsi" cell. Without it LegS uses index
time (step k has ratio 1/k), which is what the paper's timescale experiments ran.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor, nn

from bench.batch import SequenceBatch
from bench.models.base import check_sizes, last_valid
from bench.models.registry import register_model
from hippo.nn import HiPPORNN, HiPPOState

from .references import hippo_code


class HiPPOClassifier(nn.Module):
    """HiPPO-RNN classifier: ``forward(batch) -> logits (B, num_classes)``.

    Args:
        num_inputs: channels C of ``batch.values`` (B, L, C).
        num_classes: K.
        hidden_size: H (reference: 256 on CharacterTrajectories, 512 on permuted MNIST).
        measure: legs, legt, lmu, lagt, tlagt, glagt or fout (fixed per registry entry).
        memory_order: N, default ``hidden_size`` (as the reference).
        memory_channels: scalars written to memory per step (default 1).
        method: bilinear (default), forward_euler, backward_euler, or zoh (LTI measures only).
        theta: LTI memory timescale in steps (LegT/LMU/FouT window; Laguerre decay scale);
            default 100 = the reference's dt = 0.01. Must stay None for legs.
        timestamped: legs only: memory steps from ``batch.times`` instead of index time.
        measure_args: measure parameters, e.g. ``{"beta": 0.5}`` for tlagt.
    """

    code_version = "1"
    # Per-measure bumps on top of code_version: fout's matrices were fixed (hippo.transition).
    measure_versions: ClassVar[dict[str, str]] = {"fout": "2"}
    batch_extras: ClassVar[dict[str, Callable]] = {}  # no per-split preprocessing
    # Index time ignores batch.times; timestamped LegS reads only ratios (t_k - t_k-1) / t_k.
    time_scale_invariant = True

    @classmethod
    def version_for(cls, measure: str, **_fixed: object) -> str:
        """The code version of the registry entry with this ``measure``: ``code_version``, plus
        the measure's own bump if it has one (so bumping the class still changes every entry)."""
        bump = cls.measure_versions.get(measure)
        return cls.code_version if bump is None else f"{cls.code_version}+{measure}.{bump}"

    def __init__(
        self,
        num_inputs: int,
        num_classes: int,
        hidden_size: int = 256,
        *,
        measure: str,
        memory_order: int | None = None,
        memory_channels: int = 1,
        method: str = "bilinear",
        theta: float | None = None,
        timestamped: bool = False,
        measure_args: dict | None = None,
    ):
        super().__init__()
        check_sizes("HiPPOClassifier", num_inputs=num_inputs, num_classes=num_classes,
                    hidden_size=hidden_size, memory_channels=memory_channels)
        if memory_order is not None:
            check_sizes("HiPPOClassifier", memory_order=memory_order)
        self.rnn = HiPPORNN(
            num_inputs, hidden_size, measure=measure, memory_order=memory_order,
            memory_channels=memory_channels, method=method, theta=theta,
            timestamped=timestamped, measure_args=measure_args,
        )
        self.classifier = nn.Linear(hidden_size, num_classes)
        cell = self.rnn.cell
        self.config = {
            "num_inputs": num_inputs,
            "num_classes": num_classes,
            "hidden_size": hidden_size,
            "measure": cell.measure,
            "memory_order": cell.memory_order,
            "memory_channels": cell.memory_channels,
            "method": cell.method,
            "theta": cell.theta,
            "timestamped": cell.timestamped,
            "measure_args": dict(cell.measure_params),
            "inputs": "values+times" if cell.timestamped else "values",
        }

    def forward(self, batch: SequenceBatch) -> Tensor:
        # Steps past the longest series cannot reach any read-out: skip them.
        steps = int(batch.lengths.max()) if len(batch) else 0
        steps = max(1, min(steps, batch.values.shape[1]))
        times = batch.times[:, :steps] if self.rnn.cell.timestamped else None
        outputs = self.rnn(batch.values[:, :steps], times)  # (B, steps, H)
        return self.classifier(last_valid(outputs, batch.lengths))

    # -- streaming: one step at a time (HiPPOCell.forward_step; same math as forward)
    def init_state(self, batch_size: int, device=None, dtype=torch.float32) -> HiPPOState:
        """Zero hidden state and memory for streaming with :meth:`step`."""
        like = torch.empty(0, device=device, dtype=dtype)
        return self.rnn.cell.initial_state(batch_size, like=like)

    def step(self, values_t: Tensor, times_t: Tensor, state: HiPPOState
             ) -> tuple[Tensor, HiPPOState]:
        """Read ``values_t`` (B, C) at ``times_t`` (B,) (used when timestamped): the logits
        ``forward`` gives for the sequence ending here, and the new state."""
        cell = self.rnn.cell
        h, state = cell.forward_step(values_t, state, times_t if cell.timestamped else None)
        return self.classifier(h), state


# name, description, fixed arguments, the suites' model sets it is in
_ENTRIES = (
    ("hippo-legs", "HiPPO-RNN, scaled Legendre memory (LegS), O(N) step", {"measure": "legs"},
     ("timescale", "timestamps", "mnist", "missing", "throughput")),
    ("hippo-legs-ts", "HiPPO-RNN, timestamped LegS (the reference's tlsi): steps (t_k - t_k-1) / t_k from "
     "batch.times", {"measure": "legs", "timestamped": True}, ("timestamps",)),
    ("hippo-legt", "HiPPO-RNN, translated Legendre memory (LegT, window theta)", {"measure": "legt"},
     ("timescale", "timestamps", "mnist", "throughput")),
    ("hippo-lagt", "HiPPO-RNN, translated Laguerre memory (LagT)", {"measure": "lagt"},
     ("timescale", "timestamps", "mnist", "throughput")),
    ("hippo-tlagt", "HiPPO-RNN, tilted Laguerre memory (TLagT)", {"measure": "tlagt"}, ("mnist", "throughput")),
    ("hippo-glagt", "HiPPO-RNN, generalised Laguerre memory (GLagT)", {"measure": "glagt"}, ("mnist", "throughput")),
    ("hippo-fout", "HiPPO-RNN, translated Fourier memory (FouT)", {"measure": "fout"}, ("mnist", "throughput")),
)  # fmt: skip
for _name, _description, _fixed, _tags in _ENTRIES:
    register_model(_name, HiPPOClassifier, _description, references=hippo_code(), tags=_tags, **_fixed)
