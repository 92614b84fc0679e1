"""What a model needs to be benchmarked, written down once (checked before any training).

A model is a ``torch.nn.Module`` class with::

    __init__(self, num_inputs: int, num_classes: int, **kwargs)
    forward(self, batch: SequenceBatch) -> Tensor          # logits (B, num_classes)

Everything else has a default (:mod:`bench.models.base` lists the optional hooks):

- ``config`` (the dict a record stores): the resolved constructor arguments;
- ``code_version`` (part of the run id): a hash of the class's source, so an edited model is
  rerun instead of reusing stale records;
- reference settings: a model without any for a dataset family trains with that family's
  documented defaults (:data:`bench.settings.FAMILY_DEFAULTS`).

This module imports torch only (no Lightning), so a model's own package can use it.
"""

from __future__ import annotations

import hashlib
import inspect
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor


class ContractError(ValueError):
    """A model class that cannot be benchmarked; the message is one line naming what is missing."""


@runtime_checkable
class SequenceModel(Protocol):
    """The interface every benchmarked model follows (``bench.batch.SequenceBatch`` in, logits out)."""

    def __init__(self, num_inputs: int, num_classes: int, **kwargs: Any) -> None: ...

    def forward(self, batch: Any) -> Tensor: ...


def check_model_class(cls: Any, name: str) -> None:
    """Raise :class:`ContractError` (one line) unless ``cls`` follows :class:`SequenceModel`."""
    where = f"model {name!r} ({getattr(cls, '__module__', '?')}:{getattr(cls, '__qualname__', cls)!s})"
    if not inspect.isclass(cls) or not issubclass(cls, torch.nn.Module):
        raise ContractError(f"{where} must be a torch.nn.Module subclass, got {type(cls).__name__} {cls!r}")
    if cls.forward is torch.nn.Module.forward:
        raise ContractError(f"{where} defines no forward(batch) -> logits")
    try:
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    except (TypeError, ValueError):
        return  # a C-level constructor: nothing to check
    names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if names[:2] != ["num_inputs", "num_classes"] and not any(p.kind == p.VAR_POSITIONAL for p in params):
        raise ContractError(f"{where} must take __init__(num_inputs, num_classes, **kwargs); "
                            f"its first arguments are {names[:2] or 'none'}")  # fmt: skip
    version = getattr(cls, "code_version", None)
    if version is not None and not isinstance(version, str | int):
        raise ContractError(f"{where}: code_version must be a string, got {version!r}")
    extras = getattr(cls, "batch_extras", {})
    if not isinstance(extras, dict) or not all(callable(f) for f in extras.values()):
        raise ContractError(f"{where}: batch_extras must map names to functions, got {extras!r}")


def source_version(cls: type) -> str:
    """The default ``code_version``: ``src-`` and 12 hex digits of the class source's sha256
    (``"unversioned"`` when the source cannot be read, e.g. a class typed into a REPL)."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return "unversioned"
    return "src-" + hashlib.sha256(source.encode()).hexdigest()[:12]


def default_config(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The resolved constructor arguments (defaults filled in), JSON-able (others as ``repr``)."""
    try:
        bound = inspect.signature(cls).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return {"num_inputs": args[0], "num_classes": args[1], **kwargs} if len(args) == 2 else dict(kwargs)
    bound.apply_defaults()
    out: dict[str, Any] = {}
    for key, value in bound.arguments.items():
        if isinstance(value, dict) and inspect.signature(cls).parameters[key].kind == inspect.Parameter.VAR_KEYWORD:
            out.update({k: _plain(v) for k, v in value.items()})
        else:
            out[key] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return repr(value)
