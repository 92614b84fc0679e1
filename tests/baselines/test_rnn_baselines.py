"""LSTM and GRU: reading the output at lengths - 1 equals the final state of a packed sequence."""

from __future__ import annotations

import pytest
import torch
from baseline_batches import make_batch
from torch.nn.utils.rnn import pack_padded_sequence

from baselines.rnn import GRUClassifier, LSTMClassifier


@pytest.mark.parametrize("cls", [LSTMClassifier, GRUClassifier])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_last_valid_output_equals_packed_final_state(cls: type, num_layers: int) -> None:
    torch.manual_seed(0)
    model = cls(3, 4, hidden_size=6, num_layers=num_layers)
    batch = make_batch([9, 4, 7], seed=2)
    packed = pack_padded_sequence(
        batch.values, batch.lengths, batch_first=True, enforce_sorted=False
    )
    _, state = model.rnn(packed)
    h_n = state[0] if isinstance(state, tuple) else state
    torch.testing.assert_close(model(batch), model.classifier(h_n[-1]))
    assert model.config["num_layers"] == num_layers


def test_bad_num_layers_raises() -> None:
    with pytest.raises(ValueError, match="num_layers must be a positive integer"):
        LSTMClassifier(3, 4, num_layers=0)
