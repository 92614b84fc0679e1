"""One lazy registry for everything named: models, datasets, tasks (lm-evaluation-harness's
``Registry``, timm's ``register_model``).

An entry's target is ``"module:attribute"`` (imported on first use, so heavy optional
dependencies load only when that entry is used) or the object itself. :func:`load_target` is the
one loader every registry and lazy module attribute uses. A registry may also read the entry
points of installed distributions (``importlib.metadata``, group e.g. ``hippo_bench.models``),
lazily, the first time a name is missing or the names are listed, and import the modules that
register its built-in entries (:meth:`Registry.autoload`: a model's file registers itself, timm's
way) before the first lookup. Lookups of unknown names raise ``ValueError`` with one line that
lists the valid names and suggests the closest one.

This module imports nothing from the project: every layer may use it.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

E = TypeVar("E")
_REQUIRED: Any = object()  # Registry.get without a default: an unknown name raises


def load_target(target: str | Any) -> Any:
    """The object a target names: ``"package.module:attr.sub"`` is imported; an object is itself.

    A target that does not resolve raises ``ValueError`` (one line: which part is missing).
    """
    if not isinstance(target, str):
        return target
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{target!r} is not 'module:attribute' (for example 'my_models:MyGRU')")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            raise ValueError(f"{target!r}: no module named {e.name!r} (is it installed, or on PYTHONPATH?)") from e
        raise
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"{target!r}: module {module_name!r} has no attribute {attr!r}") from None
    return obj


def suggest(name: str, valid: list[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest valid name, or ``""``."""
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Registry(Generic[E]):
    """Name -> entry, in registration order.

    ``kind`` names the things in messages (``"model"``); ``entry_points`` is the group whose
    installed entry points ``name = "module:attr"`` are added through ``from_entry_point(name,
    value, distribution)`` the first time they are needed.
    """

    def __init__(self, kind: str, entry_points: str | None = None,
                 from_entry_point: Callable[[str, str, str], E] | None = None) -> None:  # fmt: skip
        self.kind = kind
        self.entry_points = entry_points
        self._from_entry_point = from_entry_point
        self._entries: dict[str, E] = {}
        self._discovered = entry_points is None
        self.autoload_modules: tuple[str, ...] = ()
        self._autoloaded = True

    def autoload(self, modules: tuple[str, ...]) -> None:
        """Import ``modules`` (which register entries when imported) before the first lookup,
        listing or registration: the registry's built-in entries, without importing them now."""
        self.autoload_modules = tuple(modules)
        self._autoloaded = not modules

    def _load_builtin(self) -> None:
        if self._autoloaded:
            return
        self._autoloaded = True  # first: the modules' own registrations come back through add()
        try:
            for module in self.autoload_modules:
                importlib.import_module(module)
        except Exception:
            self._autoloaded = False  # every lookup raises the same error, never a partial list
            raise

    def add(self, name: str, entry: E) -> E:
        """Register ``entry`` under ``name``; a second entry for one name is refused."""
        self._load_builtin()
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def discover(self) -> None:
        """Add the installed distributions' entry points (once; names already taken win)."""
        if self._discovered:
            return
        self._discovered = True
        from importlib.metadata import entry_points

        for point in entry_points(group=self.entry_points):
            if point.name not in self._entries and self._from_entry_point is not None:
                dist = getattr(point, "dist", None)
                self._entries[point.name] = self._from_entry_point(point.name, point.value,
                                                                   dist.name if dist else "?")  # fmt: skip

    def __contains__(self, name: object) -> bool:
        self._load_builtin()
        if name not in self._entries:
            self.discover()
        return name in self._entries

    def get(self, name: str, default: Any = _REQUIRED) -> E:
        """The entry of ``name``; ValueError listing the valid names (and the closest one), or
        ``default`` when one is given."""
        if name in self:
            return self._entries[name]
        if default is not _REQUIRED:
            return default
        valid = self.names()
        raise ValueError(f"unknown {self.kind} {name!r}{suggest(name, valid)}; valid {self.kind}s: {', '.join(valid)}")

    def load(self, name: str) -> Any:
        """The object ``name``'s entry names: a ``"module:attr"`` entry imported, else the entry."""
        return load_target(self.get(name))

    def items(self) -> list[tuple[str, E]]:
        return [(name, self._entries[name]) for name in self.names()]

    def __getitem__(self, name: str) -> E:
        return self.get(name)

    def __setitem__(self, name: str, entry: E) -> None:
        """Register or replace (``add`` refuses a second entry; tests and overrides replace)."""
        self._load_builtin()
        self._entries[name] = entry

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def names(self) -> list[str]:
        self._load_builtin()
        self.discover()
        return list(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def copy(self) -> Registry[E]:
        """An independent registry with the same entries (tests register stand-ins on a copy)."""
        other: Registry[E] = Registry(self.kind, self.entry_points, self._from_entry_point)
        self._load_builtin()
        other._entries, other._discovered = dict(self._entries), self._discovered
        other.autoload_modules = self.autoload_modules
        return other
