"""A model of your own in the benchmark: `python -m bench run --suite timescale --include examples/my_gru.py
--models my-gru,hippo-legs` puts it in the table beside HiPPO-LegS (README, "Benchmark your own model")."""

import torch

from bench import register_model


@register_model("my-gru", description="a GRU read out at the last step (examples/my_gru.py)")
class MyGRU(torch.nn.Module):
    def __init__(self, num_inputs: int, num_classes: int, hidden_size: int = 128):
        super().__init__()
        self.gru = torch.nn.GRU(num_inputs, hidden_size, batch_first=True)
        self.head = torch.nn.Linear(hidden_size, num_classes)

    def forward(self, batch) -> torch.Tensor:  # batch: bench.SequenceBatch, values (B, L, C)
        outputs, _ = self.gru(batch.values)
        return self.head(outputs[:, -1])
