"""hippo-bench: a benchmark harness for sequence memory models.

The Python API (:mod:`bench.api`): ``bench.run``, ``bench.load_results``, ``bench.report``. They
load on first use, so ``import bench.batch`` or ``import bench.models`` stay light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_results", "report", "run"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from bench import api

        return getattr(api, name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
