"""The Neural CDE's path: torchcde Hermite cubic coefficients of ``[times, values]``.

The model declares this preprocessing (``NeuralCDE.batch_extras = {"cde_coeffs":
cde_coefficients}``); the data module runs it once per split without knowing the model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def interpolate_missing(x: Tensor) -> Tensor:
    """``(N, L, C)``: NaN -> linear interpolation in the step index between the nearest observed
    neighbours; the first / last observation before / after them; 0 for an all-NaN channel.

    The same filling torchcde applies to NaN (``t = 0..L-1``), done for the whole batch at once:
    torchcde's own NaN path loops over every series and channel in Python (45 s for this data).
    """
    observed = ~torch.isnan(x)
    if observed.all():
        return x
    length = x.shape[1]
    steps = torch.arange(length, device=x.device).view(1, -1, 1).expand_as(x)
    prev = torch.where(observed, steps, -1).cummax(dim=1).values
    nxt = torch.where(observed, steps, length).flip(1).cummin(dim=1).values.flip(1)
    x_prev = x.gather(1, prev.clamp(min=0))
    x_next = x.gather(1, nxt.clamp(max=length - 1))
    ratio = (steps - prev) / (nxt - prev).clamp(min=1)
    out = x_prev + ratio.to(x.dtype) * (x_next - x_prev)
    out = torch.where(prev < 0, x_next, out)  # before the first observation
    out = torch.where(nxt >= length, x_prev, out)  # after the last one
    out = torch.where(observed.any(dim=1, keepdim=True), out, torch.zeros_like(x))
    return torch.where(observed, x, out)


def cde_coefficients(
    values: Tensor, times: Tensor, mask: Tensor, lengths: Tensor | None = None
) -> Tensor:
    """torchcde Hermite coefficients of ``[times, values]`` with NaN at unobserved points.

    ``(N, L, C)``, ``(N, L)``, ``(N, L, C)``, ``lengths`` ``(N,)`` or None ->
    ``(N, L - 1, 4 * (C + 1))`` float32. The spline is parameterised by torchcde's default
    ``t = 0..L-1``; time enters as channel 0. Steps at or past ``lengths`` count as unobserved, so
    a padded series gets the same path up to its length as the unpadded one (after a channel's
    last observation torchcde holds that value). NaN points are filled first by
    :func:`interpolate_missing`, exactly as torchcde would fill them. The one implementation:
    data modules precompute ``extras["cde_coeffs"]`` with it (the model declares it) and the
    Neural CDE calls it when a batch arrives without them.
    """
    import torchcde  # only models that ask for coefficients pay for the import

    if lengths is not None:
        steps = torch.arange(values.shape[1], device=values.device)
        mask = mask & (steps.view(1, -1) < lengths.view(-1, 1).to(values.device)).unsqueeze(-1)
    x = torch.cat([times[..., None], values.masked_fill(~mask, float("nan"))], dim=-1).float()
    return torchcde.hermite_cubic_coefficients_with_backward_differences(
        interpolate_missing(x)
    ).float()


def batch_coefficients(batch: Any, path_channels: int, model: str) -> Tensor:
    """A batch's spline coefficients ``(B, L-1, 4 * path_channels)`` in its values' dtype: the
    data module's ``extras["cde_coeffs"]`` when present (shape checked, one line naming
    ``model`` if it is wrong), else computed here with :func:`cde_coefficients`."""
    coeffs = batch.extras.get("cde_coeffs")
    if coeffs is None:
        return cde_coefficients(batch.values, batch.times, batch.mask, batch.lengths).to(batch.values.dtype)
    expected = (batch.values.shape[0], batch.values.shape[1] - 1, 4 * path_channels)
    if tuple(coeffs.shape) != expected:
        raise ValueError(f"{model}: extras['cde_coeffs'] has shape {tuple(coeffs.shape)}; expected {expected}")
    return coeffs.to(batch.values.dtype)
