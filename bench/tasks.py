"""The kinds of run (a spec's ``task``): one object each says everything the harness does with it.

A :class:`Task` names how a run executes, how its suite reports, which numbers ``bench compare``
checks, the one number a progress line shows, and how it uses training settings and devices.
A new kind of run (say, streaming evaluation) is one more :class:`Task` here, not a string
checked in seven modules. Functions are named ``"module:function"`` and imported on use, so this
module stays a leaf that every other one may import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.registry import load_target


@dataclass(frozen=True)
class CompareMetric:
    """A number ``bench compare`` checks: ``record.<source>[name]`` (or the record attribute).

    ``kind`` is the regression kind (accuracy, throughput, memory); ``relative`` compares a
    ratio of medians (else a difference of means, with a seed-spread threshold).
    """

    name: str
    kind: str
    source: str = "metrics"  # "metrics", "throughput" or "record"
    relative: bool = True
    lower_is_better: bool = False

    def read(self, record: Any) -> Any:
        if self.source == "record":
            return getattr(record, self.name, None)
        return (getattr(record, self.source) or {}).get(self.name)


@dataclass(frozen=True)
class Task:
    """One kind of run.

    - ``run``: ``"module:function"``, ``function(spec, ctx, run_id, log) -> dict`` of record fields.
    - ``report``: ``"module:function"`` building a suite's tables and plots from its records.
    - ``settings``: the spec's ``train`` is a :class:`bench.settings.TrainSettings` (validated).
    - ``trains``: Lightning training: the trainer options (devices, nodes, strategy) apply, and
      every rank of a multi-process strategy joins the run.
    - ``on_device``: runs on the chosen device (its accelerator is part of the run id).
    - ``headline``: ``(metric, format)`` of the number a progress line shows.
    - ``version``: ``"module:ATTRIBUTE"`` of the code version when it is not the model's.
    """

    name: str
    description: str
    run: str
    report: str
    compare: tuple[CompareMetric, ...]
    headline: tuple[str, str]
    settings: bool = False
    trains: bool = False
    on_device: bool = False
    version: str | None = None

    def load(self, what: str) -> Any:
        """The function (or attribute) named by field ``what`` (``"run"``, ``"report"``, ...)."""
        return load_target(getattr(self, what))


_THROUGHPUT = (
    CompareMetric("train_samples_per_s", "throughput", "throughput"),
    CompareMetric("infer_samples_per_s", "throughput", "throughput"),
    CompareMetric("peak_memory_bytes", "memory", "record", lower_is_better=True),
)

TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("classification", "train with model selection, evaluate at every rate, time a throughput phase",
             run="bench.runner:run_classification", report="bench.reports:classification_report",
             compare=(CompareMetric("test_acc", "accuracy", relative=False),
                      # the reference codes' selection (absent from MNIST and older records)
                      CompareMetric("test_acc_eval_selected", "accuracy", relative=False), *_THROUGHPUT),
             headline=("test_acc", "test_acc {:.3f}"), settings=True, trains=True, on_device=True),
        Task("funcapprox", "online function approximation with hippo (CPU, float64)",
             run="bench.runner:run_funcapprox", report="bench.reports:funcapprox_report",
             compare=(CompareMetric("mse", "accuracy", lower_is_better=True),
                      CompareMetric("steps_per_s", "throughput")),
             headline=("mse", "mse {:.3g}"), version="hippo.funcapprox:CODE_VERSION"),
        Task("throughput", "timing only: training, inference and streaming inference",
             run="bench.runner:run_throughput", report="bench.reports:throughput_report", compare=_THROUGHPUT,
             headline=("train_samples_per_s", "train {:.1f} samples/s"), settings=True, on_device=True),
    )
}  # fmt: skip


def get_task(name: str) -> Task:
    """The task called ``name``; ValueError listing the valid ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}") from None


def compare_metrics() -> tuple[CompareMetric, ...]:
    """Every task's compared numbers, once each (a record without one is skipped for it)."""
    return tuple({m.name: m for t in TASKS.values() for m in t.compare}.values())
