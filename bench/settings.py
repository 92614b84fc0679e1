"""Training settings: the schema, and what the profiles change.

:class:`TrainSettings` replaces the unchecked ``train`` dict of a run spec: a mistyped or
unknown key is one clear error naming the key and the valid keys, never a silent default.
:class:`Reference` is how a model was trained in its *own* reference code on one dataset family;
each model's file declares its references beside its registration (``baselines/references.py``
names the shared sources), and a model without one trains with :data:`FAMILY_DEFAULTS`. The
``paper`` profile is the reference itself; :data:`PROFILE_SCALING` says what the ``quick`` and
``smoke`` profiles change (fewer epochs, capped widths, fewer batches), and
:func:`bench.profiles.model_settings` applies it. ``--set`` overrides are parsed and validated
here too.

This module imports nothing from the project (but :mod:`bench.registry`'s name suggestions): a
model's file may use it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Profiles, smallest to largest (a report shows the largest present): bench.suites documents them.
PROFILES = ("smoke", "quick", "paper")


class SettingsError(ValueError):
    """Bad training settings (unknown key, wrong type, out of range). The message is one line."""


@dataclass(frozen=True)
class TrainSettings:
    """How one classification (or throughput) run trains. Every field is part of the run id.

    - ``epochs``, ``batch_size``, ``lr``: as usual. ``weight_decay`` goes to the optimiser,
      ``grad_clip`` (max gradient norm, or None) to Lightning's ``gradient_clip_val``.
    - ``limit_train_batches`` / ``limit_eval_batches``: batches per epoch / per evaluation (None:
      all), for the small profiles.
    - ``eval_rates``: test rates (fractions of the source rate) of the accuracy-versus-rate curve.
    - ``throughput_warmup`` / ``throughput_iters``: the timed throughput phase (0 iters: none).
    - ``devices``, ``num_nodes``, ``strategy``, ``accelerator``: where and how Lightning trains.
    - ``val_every``: validate (and so consider for selection) only after epochs ``0, k, 2k, ...``
      and the last one, as the Neural CDE experiments do (every 10 epochs).
    - ``lr_plateau_patience``: divide the learning rate by 10 when the selection metric has not
      improved for more than this many validations (``ReduceLROnPlateau(mode="max")``; None: off).
    - ``stop_patience``: stop when, for more than this many epochs, neither the training loss
      (by a relative 1e-4) nor the training accuracy (by a relative 1e-3) has improved, judged
      at the validations (the Neural CDE experiments' ``plateau_terminate`` of 50; None: off).

    The last three are :data:`OPTIONAL_FIELDS`: a spec holds them only when they differ from
    their defaults, so the ids of runs made before they existed do not change.

    A model may set up its own optimiser (parameter groups, a schedule): see
    :meth:`bench.training.SequenceClassifier.configure_optimizers`.
    """

    epochs: int = 1
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float | None = None
    limit_train_batches: int | None = None
    limit_eval_batches: int | None = None
    eval_rates: tuple[float, ...] = ()
    throughput_warmup: int = 1
    throughput_iters: int = 0
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    accelerator: str = "cpu"
    val_every: int = 1
    lr_plateau_patience: int | None = None
    stop_patience: int | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "devices", "num_nodes", "val_every"):
            _check_int(name, getattr(self, name), minimum=1)
        for name in ("throughput_warmup", "throughput_iters"):
            _check_int(name, getattr(self, name), minimum=0)
        for name in ("limit_train_batches", "limit_eval_batches", "stop_patience"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), minimum=1)
        if self.lr_plateau_patience is not None:
            _check_int("lr_plateau_patience", self.lr_plateau_patience, minimum=0)
        _check_number("lr", self.lr, positive=True)
        _check_number("weight_decay", self.weight_decay, positive=False)
        if self.grad_clip is not None:
            _check_number("grad_clip", self.grad_clip, positive=True)
        if not isinstance(self.eval_rates, list | tuple):
            raise SettingsError(f"train setting 'eval_rates' must be a list of rates in (0, 1], got {self.eval_rates!r}")
        for rate in self.eval_rates:
            _check_number("eval_rates", rate, positive=True)
            if rate > 1:
                raise SettingsError(f"train setting 'eval_rates' holds {rate!r}; rates are in (0, 1]")
        object.__setattr__(self, "eval_rates", tuple(float(r) for r in self.eval_rates))
        for name in ("strategy", "accelerator"):
            if not isinstance(getattr(self, name), str):
                raise SettingsError(f"train setting {name!r} must be a string, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainSettings:
        """Settings from a plain dict (a spec's ``train``); unknown keys raise :class:`SettingsError`."""
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise SettingsError(
                f"unknown train setting{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                f"valid keys: {', '.join(valid)}"
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-able (what a run spec stores, so a record states its effective
        settings), except :data:`OPTIONAL_FIELDS` left at their defaults."""
        d = dataclasses.asdict(self)
        d["eval_rates"] = list(self.eval_rates)
        for name, default in OPTIONAL_FIELDS.items():
            if d[name] == default:
                del d[name]
        return d

    def is_validation_epoch(self, epoch: int) -> bool:
        """Whether epoch ``epoch`` (0-based) ends with a validation (see ``val_every``)."""
        return epoch % self.val_every == 0 or epoch == self.epochs - 1


# Fields added after harness version 2: absent from a spec at their default (run ids unchanged).
OPTIONAL_FIELDS: dict[str, Any] = {"val_every": 1, "lr_plateau_patience": None, "stop_patience": None}


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SettingsError(f"train setting {name!r} must be an integer >= {minimum}, got {value!r}")


def _check_number(name: str, value: Any, positive: bool) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= 0 if positive else value < 0):
        bound = "> 0" if positive else ">= 0"
        raise SettingsError(f"train setting {name!r} must be a number {bound}, got {value!r}")


# --- reference configurations ---------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """One model's reference configuration on one dataset family, and where it comes from."""

    model_args: Mapping[str, Any]
    epochs: int
    batch_size: int
    lr: float
    source: str
    weight_decay: float = 0.0
    grad_clip: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # other TrainSettings fields


# Protocols: another paper's training loop that a suite follows (the ``missing`` suite follows the
# Neural CDE paper's); a model's file may declare a reference under a protocol's name beside its
# family references (``baselines/references.py``).
PROTOCOLS = ("ncde-paper",)

# What a model without a reference of its own trains with (a model from outside the package):
# the family's common training loop, the model's own default widths (capped by small profiles).
NO_REFERENCE = "no reference: family defaults"
FAMILY_DEFAULTS: dict[str, Reference] = {
    "character-trajectories": Reference({}, epochs=100, batch_size=32, lr=1e-3, source=NO_REFERENCE),
    "mnist": Reference({}, epochs=50, batch_size=100, lr=1e-3, source=NO_REFERENCE),
}

@dataclass(frozen=True)
class ProfileScaling:
    """What a profile changes in the reference: epochs, widths, batches per epoch, throughput."""

    description: str
    epochs: int | None = None  # None: the reference's
    max_width: int | None = None  # cap on the model's width arguments (WIDTH_ARGS)
    batch_size: int | None = None
    limit_train_batches: int | None = None
    limit_eval_batches: int | None = None
    throughput_warmup: int = 5
    throughput_iters: int = 20
    # the reference's validation cadence, LR schedule and early stopping (the paper profile);
    # the small profiles train their few epochs with validation after every one
    full_schedule: bool = False


WIDTH_ARGS = ("hidden_size", "hidden_hidden_size")

PROFILE_SCALING: dict[str, dict[str, ProfileScaling]] = {
    "character-trajectories": {
        "smoke": ProfileScaling("smoke: 1 epoch of 2 batches of 16, widths capped at 8", epochs=1,
                                max_width=8, batch_size=16, limit_train_batches=2, limit_eval_batches=1,
                                throughput_warmup=0, throughput_iters=1),
        "quick": ProfileScaling("quick: each model's reference settings with 8 epochs and widths capped at 64",
                                epochs=8, max_width=64, throughput_warmup=1, throughput_iters=3),
        "paper": ProfileScaling("paper: each model's reference settings", full_schedule=True),
    },
    "mnist": {
        "smoke": ProfileScaling("smoke: 1 epoch of 2 batches of 32, widths capped at 8", epochs=1,
                                max_width=8, batch_size=32, limit_train_batches=2, limit_eval_batches=1,
                                throughput_warmup=1, throughput_iters=2),
        "quick": ProfileScaling("quick: 1 epoch of 100 batches, tested on 20 batches, widths capped at 64",
                                epochs=1, max_width=64, limit_train_batches=100, limit_eval_batches=20,
                                throughput_warmup=2, throughput_iters=5),
        "paper": ProfileScaling("paper: each model's reference settings", full_schedule=True),
    },
}  # fmt: skip


# --- --set KEY=VALUE overrides --------------------------------------------------------------


def parse_value(text: str) -> Any:
    """``--set`` value text -> a Python value: ints, floats (``3e-4``), ``true``/``false``,
    ``none``/``null``, lists (``[0.5, 1.0]``); anything else stays a string."""
    import ast

    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return text


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["lr=3e-4", "model.hidden_size=128"]`` -> ``{"lr": 0.0003, "model.hidden_size": 128}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"--set takes KEY=VALUE (e.g. --set lr=3e-4), got {item!r}")
        out[key.strip()] = parse_value(value)
    return out


def split_overrides(overrides: Mapping[str, Any], model_keys: Mapping[str, set[str]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(train settings, model arguments)`` of ``overrides``; one-line :class:`SettingsError`
    for an unknown, ambiguous or not-accepted key.

    ``model_keys`` maps each model of the suite to the constructor arguments it takes. A key
    may say where it goes with ``train.`` or ``model.``; without a prefix it goes where it is
    known, and a key known to both must take one.
    """
    from bench.registry import suggest

    train_keys = {f.name for f in dataclasses.fields(TrainSettings)}
    all_model_keys = set().union(*model_keys.values()) if model_keys else set()
    train: dict[str, Any] = {}
    model: dict[str, Any] = {}
    for key, value in overrides.items():
        prefix, _, bare = key.rpartition(".")
        if prefix not in ("", "train", "model"):
            raise SettingsError(f"--set {key}: the prefix must be train. or model., got {prefix!r}")
        where = prefix or ("train" if bare in train_keys else "model" if bare in all_model_keys else None)
        if not prefix and bare in train_keys and bare in all_model_keys:
            raise SettingsError(f"--set {key}: both a training setting and a model argument; "
                                f"say train.{bare} or model.{bare}")  # fmt: skip
        valid = sorted(train_keys if where == "train" else all_model_keys if where == "model" else
                       train_keys | all_model_keys)  # fmt: skip
        if where is None or bare not in valid:
            raise SettingsError(f"--set: unknown key {bare!r}{suggest(bare, valid)}; valid keys: {', '.join(valid)}")
        if where == "model":
            refusing = sorted(m for m, keys in model_keys.items() if bare not in keys)
            if refusing:
                raise SettingsError(f"--set {key}: model {', '.join(refusing)} does not take {bare!r} "
                                    "(run those models without it, or leave them out with --models)")  # fmt: skip
            model[bare] = value
        else:
            train[bare] = value
    return train, model
