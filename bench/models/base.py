"""The interface every registered model follows (documented here, checked by the every-model test,
tests/bench/test_models.py, and the registry tests).

A model is a ``torch.nn.Module`` built as ``Model(num_inputs, num_classes, hidden_size=..., **kw)``
whose ``forward(batch: SequenceBatch) -> logits (B, num_classes)`` reads ``batch.values``,
``batch.times``, ``batch.mask`` and ``batch.lengths`` as it needs, and which exposes:

- ``config``: a plain dict of the resolved hyperparameters (hidden size, memory order, theta,
  solver, ...), written into every run record so a record says exactly what ran.
- ``code_version`` (class attribute, str): bump it when a change alters what the model computes;
  run-record ids hash it, so changed models are rerun instead of reusing stale results. A class
  registered under several names with fixed arguments may add a classmethod
  ``version_for(**fixed)`` to version each entry on its own (see ``HiPPOClassifier``).
- ``batch_extras`` (class attribute, dict): the per-split preprocessing the model needs, name ->
  function ``(values, times, mask, lengths) -> (N, ...)``. The data module runs each once per
  split into ``SequenceBatch.extras[name]`` and knows no model by name (the Neural CDE declares
  ``{"cde_coeffs": cde_coefficients}``); the model must still work when a key is absent.

Optionally:

- ``configure_optimizers(*, lr, weight_decay, total_steps)`` (as nanoGPT does): the optimiser
  it trains with (see :func:`model_optimizer`).
- ``regularization() -> Tensor``: a scalar the training loss adds to the cross-entropy (the
  Neural CDE experiments' weight-norm penalty, :func:`weight_norm_penalty`). Training only:
  validation and test accuracies never see it.
- ``time_scale_invariant = True`` (class attribute): its logits do not change when every
  timestamp is multiplied by one positive constant (it ignores ``batch.times``, or reads only
  ratios of them). The runner then runs conditions that differ only in the clock's scale (the
  ``timestamps`` suite) once; the every-model test checks the claim both ways.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn


def last_valid(outputs: Tensor, lengths: Tensor) -> Tensor:
    """``outputs[b, lengths[b] - 1]`` for each ``b``: ``(B, L, H) -> (B, H)``."""
    index = (lengths.long() - 1).clamp(min=0).to(outputs.device)
    return outputs[torch.arange(outputs.shape[0], device=outputs.device), index]


def observed_lengths(mask: Tensor, lengths: Tensor) -> Tensor:
    """``(B,)`` int64: 1 + the largest step ``t < lengths[b]`` at which any channel of series ``b``
    is observed (at least 1). ``mask`` ``(B, L, C)`` bool, ``lengths`` ``(B,)``.

    A model that reads its state "at the last observation", as the Neural CDE experiments' models
    do (their ``final_index``), reads at this length minus one: the data modules pad a series'
    tail by repeating its last value but mark it unobserved. Where points were dropped (the
    ``missing`` suite) it is the last point that survived, which is the experiments'
    ``final_index`` when they pack the kept points (``missing_unknown``); with timestamps kept
    they read at the series' original end instead.
    """
    steps = torch.arange(1, mask.shape[1] + 1, device=mask.device)
    seen = mask.any(dim=-1) & (steps[None] <= lengths.to(mask.device)[:, None])
    return (seen * steps).amax(dim=1).clamp(min=1)


def training_loss(model: nn.Module, batch: Any) -> tuple[Tensor, Tensor]:
    """``(loss, logits)`` of one training step: cross-entropy plus the model's own
    ``regularization()`` when it has one. Training and the throughput suite both use it."""
    logits = model(batch)
    loss = torch.nn.functional.cross_entropy(logits, batch.labels)
    regularization = getattr(model, "regularization", None)
    if callable(regularization):
        loss = loss + regularization()
    return loss, logits


def weight_norm_penalty(module: nn.Module, scale: float) -> Tensor:
    """``scale * sum(||p||)`` over ``module``'s trainable parameters (Frobenius norms, not squared):
    the penalty the Neural CDE experiments add to the loss (``_add_weight_regularisation``,
    scale 0.03), unlike Adam's weight decay."""
    norms = [p.norm() for p in module.parameters() if p.requires_grad]
    return scale * torch.stack(norms).sum() if norms and scale else torch.zeros(())


def check_sizes(name: str, **sizes: int) -> None:
    """Reject non-positive integer sizes with one clear line naming the argument."""
    for key, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}: {key} must be a positive integer, got {value!r}")


def model_optimizer(model: nn.Module, *, lr: float, weight_decay: float,
                    total_steps: int | Callable[[], int]) -> Any:
    """The optimiser ``model`` trains with: its ``configure_optimizers`` hook's, else Adam over
    every parameter.

    The hook returns an optimizer or Lightning's ``{"optimizer": ..., "lr_scheduler": ...}``
    (parameter groups, weight decay, a schedule over ``total_steps`` optimiser steps). Pass
    ``total_steps`` as a function when counting them costs something: it is called only for a
    hook.
    """
    hook = getattr(model, "configure_optimizers", None)
    if callable(hook):
        steps = total_steps() if callable(total_steps) else total_steps
        config = hook(lr=lr, weight_decay=weight_decay, total_steps=max(1, int(steps)))
        optimizer = config.get("optimizer") if isinstance(config, dict) else config
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"{type(model).__name__}.configure_optimizers must return an optimizer or "
                            f"{{'optimizer': ..., 'lr_scheduler': ...}}, got {type(config).__name__}")
        return config
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
