"""hippo-bench: a benchmark harness for sequence memory models.

The Python API (:mod:`bench.api`): ``bench.run``, ``bench.load_results``, ``bench.report``. They
load on first use, so ``import bench.batch`` or ``import bench.models`` stay light. Bringing a
model of your own: ``bench.register_model`` (a decorator on your class), the contract it follows
(``bench.SequenceModel``) and the batch it reads (``bench.SequenceBatch``).
"""

from __future__ import annotations

from typing import Any

from bench.batch import SequenceBatch
from bench.models.contract import SequenceModel
from bench.models.registry import register_model

__all__ = ["SequenceBatch", "SequenceModel", "load_results", "register_model", "report", "run"]
_API = ("load_results", "report", "run")


def __getattr__(name: str) -> Any:
    if name in _API:
        from bench import api

        return getattr(api, name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
