"""Model registry: every model registers itself in its own file, beside its reference settings and
the suites it belongs to (timm's ``@register_model`` with ``default_cfgs``), and there are four
ways to bring a model from outside (README, "Benchmark your own model"):

- ``register_model(name, "module:Class", description, **fixed)`` from any module;
- the decorator ``@register_model("my-gru", description="...")`` on a class;
- a class path as the name, ``"my_pkg.my_module:MyNet"``, for a class never registered;
- an installed distribution's entry points in the group ``hippo_bench.models``
  (``my-net = "my_pkg.my_module:MyNet"``), discovered the first time a name is missing.

The built-in models' files (:data:`bench.models.BUILTIN_MODEL_MODULES`) are imported on the first
lookup; files and modules named by ``--include`` (:mod:`bench.plugins`) before it. Model files
import heavy optional dependencies (torchcde, mamba_ssm) only when a model that needs them runs,
so ``python -m bench ls models`` stays light. Every class is checked against the contract
(:mod:`bench.models.contract`) when it is first loaded.

This module is part of the API a model is written against: it imports nothing above
:mod:`bench.registry`, :mod:`bench.settings` and :mod:`bench.models.contract`.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from bench.models.contract import check_model_class, default_config, source_version
from bench.registry import Registry, load_target
from bench.settings import FAMILY_DEFAULTS, PROTOCOLS, Reference

ENTRY_POINT_GROUP = "hippo_bench.models"
BUILT_IN = "built-in"


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its class (or ``"module:Class"``), the fixed arguments that define it,
    and where it comes from (``source``: built-in, a module, ``--include``, a class path or an
    entry point).

    ``references``: its reference settings per dataset family (``"character-trajectories"``,
    ``"mnist"``) or protocol (``"ncde-paper"``), each naming its source; a family it has none for
    gets the family's defaults (:meth:`reference`). ``tags``: the suites' model sets it belongs
    to (``"timescale"``, ``"mnist"``, ...): a suite runs the models tagged with its tag by default.
    """

    name: str
    target: str | type  # "package.module:ClassName", or the class
    description: str
    fixed: Mapping[str, Any] = field(default_factory=dict)
    source: str = BUILT_IN
    references: Mapping[str, Reference] = field(default_factory=dict)
    tags: tuple[str, ...] = ()

    def reference(self, family: str, protocol: str | None = None) -> Reference:
        """The settings this model trains with on ``family``: ``protocol``'s where the model has
        one, else its family reference, else the family's defaults (``NO_REFERENCE``)."""
        if protocol is not None and protocol in self.references:
            return self.references[protocol]
        if family not in FAMILY_DEFAULTS:
            raise ValueError(f"unknown dataset family {family!r}; known: {', '.join(FAMILY_DEFAULTS)}")
        return self.references.get(family, FAMILY_DEFAULTS[family])

    def load(self) -> type[torch.nn.Module]:
        cls = load_target(self.target)
        check_model_class(cls, self.name)
        return cls

    def importable_target(self) -> str | None:
        """``"module:Class"`` a fresh process can import (workers rebuild the entry from it), or
        None for a class defined in ``__main__`` or in an ``--include`` file (workers re-include)."""
        if isinstance(self.target, str):
            return self.target
        module = getattr(self.target, "__module__", "__main__")
        if module == "__main__" or module.startswith("bench_include_"):
            return None
        return f"{module}:{self.target.__qualname__}"

    def time_scale_invariant(self) -> bool:
        """Whether the class declares its logits independent of a uniform time scale
        (``bench.models.base``); False when it says nothing."""
        return bool(getattr(self.load(), "time_scale_invariant", False))

    def code_version(self) -> str:
        """The class's ``code_version``, or its ``version_for(**fixed)`` when it has one (a class
        registered several times, e.g. one HiPPO entry per measure, versions each entry); a
        class without either gets a hash of its source (:func:`source_version`)."""
        cls = self.load()
        version_for = getattr(cls, "version_for", None)
        if version_for is not None:
            return str(version_for(**self.fixed))
        version = getattr(cls, "code_version", None)
        return source_version(cls) if version is None else str(version)


def _entry_point(name: str, value: str, distribution: str) -> ModelEntry:
    return ModelEntry(name, value, f"entry point of {distribution}", source=f"entry point ({distribution})")


MODELS: Registry[ModelEntry] = Registry("model", ENTRY_POINT_GROUP, _entry_point)
# set by bench.plugins.include while a file or module of the user's is being imported
_including: list[str] = []


def register_model(name: str, target: str | type | None = None, description: str = "", *,
                   references: Mapping[str, Reference] | None = None, tags: tuple[str, ...] = (),
                   **fixed: Any) -> Any:  # fmt: skip
    """Register ``name`` as ``target`` (``"module:Class"`` or a class) built with ``fixed``
    keyword arguments. Without ``target`` it is a class decorator::

        @register_model("my-gru", description="a GRU of mine")
        class MyGRU(torch.nn.Module): ...

    ``references`` (family or protocol -> :class:`bench.settings.Reference`) and ``tags`` (the
    suites' model sets, e.g. ``("timescale",)``) are optional: see :class:`ModelEntry`.
    """
    if target is None:
        def decorate(cls: type) -> type:
            register_model(name, cls, description or (cls.__doc__ or "").strip().split("\n")[0],
                           references=references, tags=tags, **fixed)  # fmt: skip
            return cls

        return decorate
    if not isinstance(target, str):
        check_model_class(target, name)
    for key in references or {}:
        if key not in FAMILY_DEFAULTS and key not in PROTOCOLS:
            raise ValueError(f"register_model({name!r}): references has {key!r}; keys are dataset families "
                             f"({', '.join(FAMILY_DEFAULTS)}) or protocols ({', '.join(PROTOCOLS)})")  # fmt: skip
    if _registered_by_its_builtin_file(target):
        source = BUILT_IN
    elif _including:
        source = _including[-1]
    elif isinstance(target, str):
        source = "register_model"
    else:
        source = f"@register_model in {target.__module__}"
    MODELS.add(name, ModelEntry(name, target, description, dict(fixed), source, dict(references or {}), tuple(tags)))
    return target


def _registered_by_its_builtin_file(target: str | type) -> bool:
    """Whether ``target`` is a class registered while its own built-in model file is being
    imported (its decorators), not a user's registration of a built-in class elsewhere."""
    if isinstance(target, str) or target.__module__ not in MODELS.autoload_modules:
        return False
    module = sys.modules.get(target.__module__)
    # importlib marks a module's spec while the module's code runs
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def models_tagged(tag: str) -> tuple[str, ...]:
    """The registered models tagged ``tag`` (a suite's default models), in registration order."""
    return tuple(n for n in list_models() if tag in MODELS.get(n).tags)


def list_models() -> list[str]:
    """Names of every registered model: the built-in ones in the order of their files
    (:data:`bench.models.BUILTIN_MODEL_MODULES`) and of the registrations in each file, whatever
    was imported first; then the others, in registration order (entry points last)."""
    modules = MODELS.autoload_modules

    def rank(item: tuple[int, str]) -> tuple[int, int]:
        index, name = item
        entry = MODELS.get(name)
        module = entry.target.partition(":")[0] if isinstance(entry.target, str) else entry.target.__module__
        built_in = entry.source == BUILT_IN and module in modules
        return (modules.index(module) if built_in else len(modules), index)

    return [name for _, name in sorted(enumerate(MODELS.names()), key=rank)]


def get_model_entry(name: str) -> ModelEntry:
    """The entry of ``name``; a ``"module:Class"`` name that is not registered is imported and
    registered under that name (``source`` "class path"). ValueError (one line) otherwise."""
    if name not in MODELS and ":" in name:
        cls = load_target(name)
        check_model_class(cls, name)
        MODELS.add(name, ModelEntry(name, name, (cls.__doc__ or "").strip().split("\n")[0], source="class path"))
    return MODELS.get(name)


def model_parameters(name: str) -> dict[str, inspect.Parameter]:
    """The keyword arguments ``create_model(name, ...)`` accepts as overrides, with defaults."""
    entry = get_model_entry(name)
    params = inspect.signature(entry.load().__init__).parameters
    skip = {"self", "num_inputs", "num_classes", *entry.fixed}
    return {
        k: p
        for k, p in params.items()
        if k not in skip and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def create_model(name: str, num_inputs: int, num_classes: int, **overrides: Any) -> torch.nn.Module:
    """Build registered model ``name`` for ``num_inputs`` channels and ``num_classes`` classes.

    ``overrides`` are keyword arguments of the model's constructor. Unknown names and unknown
    overrides raise ``ValueError`` listing what is valid. A model without ``config`` gets its
    resolved constructor arguments as one.
    """
    entry = get_model_entry(name)
    accepted = model_parameters(name)
    cls = entry.load()
    takes_any = any(p.kind == p.VAR_KEYWORD for p in inspect.signature(cls.__init__).parameters.values())
    unknown = sorted(set(overrides) - set(accepted))
    if unknown and not takes_any:
        raise ValueError(
            f"model {name!r} does not take {', '.join(unknown)}; "
            f"it takes: {', '.join(accepted) or '(nothing)'}"
        )
    kwargs = {**entry.fixed, **overrides}
    model = cls(num_inputs, num_classes, **kwargs)
    if not isinstance(getattr(model, "config", None), dict):
        model.config = default_config(cls, (num_inputs, num_classes), kwargs)
    return model

