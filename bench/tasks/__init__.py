"""The kinds of run (a spec's ``task``), one module each, on one lazy registry.

``classification`` (:mod:`bench.tasks.classification`), ``throughput`` and ``funcapprox``. A new
kind of run (say, a memory probe) is one more module with a :class:`Task` named ``TASK`` and one
line here, not a string checked in seven modules. Task modules import on first use.
"""

from __future__ import annotations

from bench.models import get_model_entry
from bench.records import RunRecord, error_line
from bench.registry import Registry
from bench.tasks.base import CompareMetric, RunContext, Task, make_data_module

TASKS: Registry[Task] = Registry("task")
TASKS.add("classification", "bench.tasks.classification:TASK")
TASKS.add("throughput", "bench.tasks.throughput:TASK")
TASKS.add("funcapprox", "bench.tasks.funcapprox:TASK")


def get_task(name: str) -> Task:
    """The task called ``name``; ValueError (one line) listing the valid ones."""
    return TASKS.load(name)


def list_tasks() -> list[str]:
    return TASKS.names()


def code_version(task: str, model: str) -> str:
    """The version that, with the spec, names a run of ``task`` on ``model``: the task's own
    (function approximation) or the model class's ``code_version``."""
    version = get_task(task).version
    return version if version is not None else get_model_entry(model).code_version()


def current_version(task: str, model: str) -> str | None:
    """:func:`code_version` as this checkout computes it, or None when it cannot be known (a
    model that is not registered here, or does not import)."""
    try:
        return code_version(task, model)
    except Exception:
        return None


def compare_metrics() -> tuple[CompareMetric, ...]:
    """Every task's compared numbers, once each (a record without one is skipped for it)."""
    return tuple({m.name: m for t in TASKS for m in get_task(t).compare}.values())


def headline(record: RunRecord) -> str:
    """The one number that says how a run went (or its error)."""
    if record.status != "ok":
        return error_line(record)
    key, fmt = get_task(record.spec.task).headline
    value = record.metrics.get(key)
    return "" if value is None else fmt.format(value)


__all__ = [
    "TASKS",
    "CompareMetric",
    "RunContext",
    "Task",
    "code_version",
    "compare_metrics",
    "current_version",
    "get_task",
    "headline",
    "list_tasks",
    "make_data_module",
]
