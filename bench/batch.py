"""The one batch type every model in hippo-bench consumes."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch
from torch import Tensor


@dataclass
class SequenceBatch:
    """A batch of multichannel sequences, identical for every model.

    Shapes (B = batch, L = steps, C = channels):

    - ``values``  ``(B, L, C)`` float32. Never NaN: points that were not observed hold the last
      observed value (forward fill) and are false in ``mask``.
    - ``times``   ``(B, L)`` float32: seconds under ``time="physical"``, step indices
      ``0, 1, 2, ...`` under ``time="index"`` (the data module decides, never the model).
    - ``mask``    ``(B, L, C)`` bool, true where the value was observed. A series' tail may be
      padding before ``lengths`` too (the UEA protocol pads by repeating the last value, as the
      reference codes do): it is false in ``mask`` (``bench.models.base.observed_lengths``).
    - ``lengths`` ``(B,)`` int64: how many leading steps of each series a model reads; steps at or
      past ``lengths[b]`` are padding and must not change series ``b``'s logits.
    - ``labels``  ``(B,)`` int64 class indices ``0..num_classes-1``.
    - ``extras``  per-model preprocessing computed once per split by the data module (for example
      ``"cde_coeffs"``: torchcde Hermite coefficients ``(B, L-1, 4 * (C + 1))``). Models must
      still work when a key they use is absent (they compute it themselves).
    """

    values: Tensor
    times: Tensor
    mask: Tensor
    lengths: Tensor
    labels: Tensor
    extras: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        b, l, c = self.values.shape
        expected = {"times": (b, l), "mask": (b, l, c), "lengths": (b,), "labels": (b,)}
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(
                    f"SequenceBatch.{name} has shape {got}; expected {shape} to match values {(b, l, c)}"
                )

    def to(self, device: torch.device | str, non_blocking: bool = False) -> SequenceBatch:
        """The same batch on ``device`` (Lightning calls this to move batches)."""
        moved = {
            f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
            for f in fields(self)
            if f.name != "extras"
        }
        extras = {k: v.to(device, non_blocking=non_blocking) for k, v in self.extras.items()}
        return SequenceBatch(**moved, extras=extras)

    def __len__(self) -> int:
        return self.values.shape[0]

    @property
    def num_channels(self) -> int:
        return self.values.shape[-1]


def collate_sequences(items: list[dict[str, Tensor]]) -> SequenceBatch:
    """Stack per-series dicts (keys as in :class:`SequenceBatch`, extras under ``extras``) into a batch."""
    stacked = {
        name: torch.stack([item[name] for item in items])
        for name in ("values", "times", "mask", "lengths", "labels")
    }
    extra_keys = items[0].get("extras", {}).keys()
    extras = {k: torch.stack([item["extras"][k] for item in items]) for k in extra_keys}
    return SequenceBatch(**stacked, extras=extras)
