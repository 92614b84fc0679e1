"""Outside code in the benchmark: ``--include`` files and modules, carried to every worker.

``include("my_models.py")`` imports a file (or ``include("my_pkg.models")`` a module) before any
name is resolved, so the models it registers (:func:`bench.models.register_model`) are known to
every suite. Worker processes (``--executor processes`` or ``submitit``) start fresh: the parent
sends them :func:`plugin_state` (the includes, and every model registered outside the package
whose class a fresh process can import), and each worker :func:`restore`\\ s it before its run.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.models import registry

_INCLUDED: dict[str, str] = {}  # what was included in this process -> its module name


class IncludeError(ValueError):
    """An ``--include`` that cannot be imported; the message is one line."""


def include(target: str | Path) -> str:
    """Import ``target``, a ``.py`` file or an importable module name, once per process.

    Returns the module name. Models registered while it imports have ``source`` "--include
    <target>" (``bench ls models`` shows it).
    """
    key = str(Path(target).resolve()) if str(target).endswith(".py") else str(target)
    if key in _INCLUDED:
        return _INCLUDED[key]
    registry._including.append(f"--include {target}")
    try:
        if key.endswith(".py"):
            path = Path(key)
            if not path.is_file():
                raise IncludeError(f"--include {target}: no such file")
            name = f"bench_include_{path.stem}_{hashlib.sha256(key.encode()).hexdigest()[:8]}"
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # dataclasses and pickling look the module up by name
            try:
                spec.loader.exec_module(module)
            except Exception as e:
                del sys.modules[name]
                raise IncludeError(f"--include {target}: importing it failed: {type(e).__name__}: {e}") from e
        else:
            try:
                name = importlib.import_module(key).__name__
            except ImportError as e:
                raise IncludeError(f"--include {target}: not a .py file and not an importable module ({e})") from e
    finally:
        registry._including.pop()
    _INCLUDED[key] = name
    return name


def include_all(targets: Sequence[str | Path]) -> None:
    for target in targets:
        include(target)


def plugin_state() -> dict[str, Any]:
    """What a fresh process needs to know this process's outside models (picklable, JSON-able)."""
    models = {}
    for name in registry.list_models():
        entry = registry.get_model_entry(name)
        target = entry.importable_target()
        if entry.source != registry.BUILT_IN and target is not None:
            models[name] = {"target": target, "description": entry.description, "fixed": dict(entry.fixed),
                            "source": entry.source}  # fmt: skip
    return {"includes": list(_INCLUDED), "models": models}


def restore(state: dict[str, Any] | None) -> None:
    """Re-create :func:`plugin_state` in this process (idempotent): includes, then models."""
    if not state:
        return
    include_all(state.get("includes", ()))
    known = set(registry.list_models())
    for name, entry in state.get("models", {}).items():
        if name not in known:
            registry.MODELS.add(name, registry.ModelEntry(name, entry["target"], entry["description"],
                                                          entry["fixed"], entry["source"]))  # fmt: skip
