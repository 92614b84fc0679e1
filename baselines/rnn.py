"""LSTM and GRU baselines: ``torch.nn.LSTM`` / ``torch.nn.GRU`` read the values, a linear layer
reads the last valid hidden state.

As in the HiPPO reference code the recurrent network sees the plain values (no mask, no times),
so these models are blind to the time channel by construction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor, nn

from bench.batch import SequenceBatch
from bench.models.base import check_sizes, last_valid
from bench.models.registry import register_model

from .references import hippo_code


class _TorchRNNClassifier(nn.Module):
    """A ``torch.nn`` recurrent layer over ``values`` ``(B, L, C)`` and a linear read-out -> ``(B, K)``.

    The network runs over the full padded length and the read-out gathers the output at
    ``lengths - 1``: exact, because the recurrence is causal (steps past a series' length cannot
    reach earlier outputs), and faster than packing when most series share one length.
    """

    code_version = "1"
    batch_extras: ClassVar[dict[str, Callable]] = {}  # no per-split preprocessing
    time_scale_invariant = True  # never reads batch.times
    rnn_type: ClassVar[type[nn.RNNBase]]

    def __init__(
        self, num_inputs: int, num_classes: int, hidden_size: int = 256, num_layers: int = 1
    ):
        super().__init__()
        name = type(self).__name__
        check_sizes(
            name,
            num_inputs=num_inputs,
            num_classes=num_classes,
            hidden_size=hidden_size,
            num_layers=num_layers,
        )
        self.rnn = self.rnn_type(num_inputs, hidden_size, num_layers=num_layers, batch_first=True)
        self.classifier = nn.Linear(hidden_size, num_classes)
        self.config = {
            "num_inputs": num_inputs,
            "num_classes": num_classes,
            "hidden_size": hidden_size,
            "num_layers": num_layers,
            "cell": self.rnn_type.__name__,
            "inputs": "values",
        }

    def forward(self, batch: SequenceBatch) -> Tensor:
        outputs, _ = self.rnn(batch.values)  # (B, L, H)
        return self.classifier(last_valid(outputs, batch.lengths))

    # -- streaming: the torch.nn layer on one step, carrying its (h[, c]) state
    def init_state(self, batch_size: int, device=None, dtype=torch.float32):
        """Zero state: ``h`` (num_layers, B, H), plus ``c`` for the LSTM (a tuple)."""
        h = torch.zeros(self.rnn.num_layers, batch_size, self.rnn.hidden_size, device=device,
                        dtype=dtype)
        return (h, torch.zeros_like(h)) if isinstance(self.rnn, nn.LSTM) else h

    def step(self, values_t: Tensor, times_t: Tensor, state):
        """Read ``values_t`` (B, C) (times unused): (logits (B, K), new state)."""
        out, state = self.rnn(values_t[:, None], state)
        return self.classifier(out[:, 0]), state


@register_model("lstm", description="LSTM (torch.nn), last valid hidden state", references=hippo_code(),
                tags=("timescale", "timestamps", "mnist", "missing", "throughput"))
class LSTMClassifier(_TorchRNNClassifier):
    """LSTM baseline. Reference (HiPPO code, CharacterTrajectories): hidden 256, one layer."""

    rnn_type = nn.LSTM


@register_model("gru", description="GRU (torch.nn), last valid hidden state", references=hippo_code(),
                tags=("timescale", "timestamps", "mnist", "throughput"))
class GRUClassifier(_TorchRNNClassifier):
    """GRU baseline. Reference (HiPPO code, CharacterTrajectories): hidden 256, one layer."""

    rnn_type = nn.GRU
