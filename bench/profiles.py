"""The settings a run trains with: its model's reference for the dataset family (declared in the
model's file, :class:`bench.models.ModelEntry`), scaled by the profile (:mod:`bench.settings`).

``paper`` is each model's reference itself; ``quick`` and ``smoke`` cut epochs, widths and batches
(:data:`bench.settings.PROFILE_SCALING`). Suites build their runs with :func:`model_settings`, and
reports ask :func:`follows_profile` whether a record's settings are what its profile gives today.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.data.registry import get_dataset_entry
from bench.models import get_model_entry, model_parameters
from bench.settings import (
    NO_REFERENCE,
    OPTIONAL_FIELDS,
    PROFILE_SCALING,
    PROTOCOLS,
    WIDTH_ARGS,
    Reference,
    TrainSettings,
)


def family_of(dataset: str | None) -> str:
    """The settings family of a registered dataset (``"pmnist"`` -> ``"mnist"``; UEA datasets
    run under the CharacterTrajectories protocol)."""
    try:
        return get_dataset_entry(dataset or "").family
    except ValueError:
        return "character-trajectories"


def profile_description(dataset: str | None, profile: str) -> str:
    """What ``profile`` changes in the reference settings of ``dataset``'s family, in words."""
    scaling = PROFILE_SCALING[family_of(dataset)].get(profile)
    return scaling.description if scaling is not None else profile


def reference(family: str, model: str, protocol: str | None = None) -> Reference:
    """The reference configuration of registered ``model`` on ``family`` (under ``protocol`` when
    the model has one for it); ValueError (one line) for an unknown family, protocol or model."""
    if protocol is not None and protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    return get_model_entry(model).reference(family, protocol)


def _capped_defaults(model: str, cap: int) -> dict[str, Any]:
    """The model's own default widths above ``cap``, lowered to it (small profiles)."""
    params = model_parameters(model)
    return {k: cap for k in WIDTH_ARGS if k in params and isinstance(params[k].default, int)
            and params[k].default > cap}  # fmt: skip


def model_settings(
    family: str, model: str, profile: str, protocol: str | None = None, **train: Any
) -> tuple[TrainSettings, dict[str, Any]]:
    """``(train settings, model arguments)`` of ``model`` on ``family`` under ``profile``.

    The reference (``protocol``'s for a model that has one), scaled by
    :data:`bench.settings.PROFILE_SCALING`; ``train`` adds or overrides settings
    (``eval_rates``, ...). Width arguments above the profile's cap are lowered to it.
    """
    ref = reference(family, model, protocol)
    scale = PROFILE_SCALING[family][profile]
    args = dict(ref.model_args)
    if ref.source == NO_REFERENCE and scale.max_width is not None:
        args = _capped_defaults(model, scale.max_width)
    if scale.max_width is not None:
        args = {k: min(v, scale.max_width) if k in WIDTH_ARGS else v for k, v in args.items()}
    settings = TrainSettings.from_dict({
        "epochs": scale.epochs or ref.epochs,
        "batch_size": scale.batch_size or ref.batch_size,
        "lr": ref.lr,
        "weight_decay": ref.weight_decay,
        "grad_clip": ref.grad_clip,
        "limit_train_batches": scale.limit_train_batches,
        "limit_eval_batches": scale.limit_eval_batches,
        "throughput_warmup": scale.throughput_warmup,
        "throughput_iters": scale.throughput_iters,
        **{k: v for k, v in ref.extra.items() if scale.full_schedule or k not in OPTIONAL_FIELDS},
        **train,
    })  # fmt: skip
    return settings, args


def follows_profile(dataset: str | None, model: str, profile: str, settings: Mapping[str, Any]) -> bool:
    """Whether ``settings`` (a record's training settings and width arguments, as the report
    summarises them) are what ``profile`` gives ``model`` today, under its family's reference or
    a protocol's, so a caption may describe them."""
    for protocol in (None, *PROTOCOLS):
        try:
            train, args = model_settings(family_of(dataset), model, profile, protocol)
        except (KeyError, ValueError):
            return False
        expected = {**TrainSettings().to_dict(), **{k: None for k in OPTIONAL_FIELDS}, **train.to_dict(), **args}
        if all(settings.get(k) == expected.get(k) for k in settings if k in expected):
            return True
    return False
