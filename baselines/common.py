"""Pieces the baselines share: the GRU step with a precomputed input projection, and the MLP.

Nothing here imports torchcde or torchdiffeq.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def gru_step(gi: Tensor, h: Tensor, cell: nn.GRUCell) -> Tensor:
    """One ``torch.nn.GRUCell`` update whose input projection was computed ahead of time.

    ``gi`` ``(B, 3H)`` is ``F.linear(input, cell.weight_ih, cell.bias_ih)`` for this step (computed
    for all steps in one matmul outside the loop, since it does not depend on ``h``); ``h`` ``(B, H)``.
    Same gate layout (r, z, n) and equations as ``nn.GRUCell``; returns the new ``(B, H)``.
    """
    gh = F.linear(h, cell.weight_hh, cell.bias_hh)
    i_r, i_z, i_n = gi.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return n + z * (h - n)


def mlp(
    in_size: int, width: int, out_size: int, num_hidden_layers: int, activation: type[nn.Module]
) -> nn.Sequential:
    """``Linear(in, width)``, then ``num_hidden_layers - 1`` x ``Linear(width, width)``, then ``Linear(width, out)``.

    ``activation`` follows every layer but the last: the layout of the Neural CDE reference code's
    vector fields (``num_hidden_layers=3`` gives four linear layers).
    """
    sizes = [in_size] + [width] * num_hidden_layers
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), activation()]
    layers.append(nn.Linear(sizes[-1], out_size))
    return nn.Sequential(*layers)


def check_penalty(name: str, value: float) -> float:
    """A non-negative ``weight_penalty`` as a float, or one clear line."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise ValueError(f"{name}: weight_penalty must be a number >= 0 (0.03 in the Neural CDE "
                         f"experiments, 0 for none); got {value!r}")
    return float(value)


def check_choice(name: str, key: str, value: str, choices: tuple[str, ...]) -> None:
    """Reject ``value`` not in ``choices`` with one clear line."""
    if value not in choices:
        raise ValueError(f"{name}: {key} must be one of {', '.join(choices)}; got {value!r}")
