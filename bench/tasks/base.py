"""What every kind of run shares: the :class:`Task` a task module defines, the numbers ``bench
compare`` checks (:class:`CompareMetric`), where runs execute (:class:`RunContext`) and the data
module of a spec (:func:`make_data_module`).

A task module (``bench/tasks/classification.py``, ...) holds one kind of run whole: how it runs,
how its suite reports, which numbers are compared, the one number a progress line shows. This
module sits below them and imports no task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from bench import records
from bench.data import make_datamodule
from bench.records import RunSpec
from bench.settings import TrainSettings

if TYPE_CHECKING:  # bench.progress imports Lightning: reading a task's metadata must not
    from bench.progress import SuiteProgress


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


@dataclass
class RunContext:
    """Where and how runs execute (not part of the spec: it does not change results)."""

    results_dir: Path
    data_dir: str | Path | None
    device: torch.device
    progress: SuiteProgress | None = None
    logger: str | None = None  # a Lightning logger for per-epoch curves: "csv" or "tensorboard"
    claim: Callable[[RunSpec], bool] | None = None  # run_suite's claims (parent process only)

    def start(self, spec: RunSpec) -> bool:
        """Whether this process runs ``spec`` now: executors ask right before starting a run, and
        skip it (yield nothing for it) when another process holds its claim."""
        return self.claim is None or self.claim(spec)

    def checkpoint_dir(self, suite: str, rid: str) -> Path:
        """Where a run keeps its best weights (one file per selection rule) while it trains."""
        return records.suite_dir(self.results_dir, suite) / "checkpoints" / rid

    def curves_dir(self, suite: str, rid: str) -> Path:
        """Where the Lightning logger of a run writes its curves (``--logger``)."""
        return records.suite_dir(self.results_dir, suite) / "curves" / rid


# A task's run: (spec, context, run id, the run's logger) -> record fields (metrics, history, ...).
RunFunction = Callable[[RunSpec, RunContext, str, logging.Logger], dict[str, Any]]
# A task's report: (suite, the selected ok records, profile, failed runs, folder) -> (tables, plot paths).
ReportFunction = Callable[..., tuple[list[Any], list[Path]]]


@dataclass(frozen=True)
class Task:
    """One kind of run (a spec's ``task``), defined in its own module.

    - ``run``: ``run(spec, ctx, run_id, log) -> dict`` of record fields.
    - ``report``: ``report(suite, ok, profile, failed, folder) -> (tables, plot paths)``, from the
      record table (:func:`bench.reports.records_frame`) of the suite's selected records.
    - ``compare``: the numbers ``bench compare`` checks.
    - ``headline``: ``(metric, format)`` of the number a progress line shows.
    - ``settings``: the spec's ``train`` is a :class:`bench.settings.TrainSettings` (validated).
    - ``trains``: Lightning training: the trainer options (devices, nodes, strategy) apply, and
      every rank of a multi-process strategy joins the run.
    - ``on_device``: runs on the chosen device (its accelerator is part of the run id).
    - ``version``: the code version of every run of the task, when it is not the model's
      (function approximation: ``hippo.funcapprox``'s).
    """

    name: str
    description: str
    run: RunFunction
    report: ReportFunction
    compare: tuple[CompareMetric, ...]
    headline: tuple[str, str]
    settings: bool = False
    trains: bool = False
    on_device: bool = False
    version: str | None = None


def make_data_module(spec: RunSpec, data_dir: str | Path | None, extras: Mapping[str, Any]) -> Any:
    """The data module for ``spec`` with its protocol settings, batch size, seed and the model's
    per-split preprocessing (its ``batch_extras``: name -> function), passed only when it has some.
    """
    batch_size = TrainSettings.from_dict(spec.train).batch_size
    kwargs = dict(spec.data, data_dir=data_dir, batch_size=batch_size, seed=spec.seed)
    if extras:
        kwargs["extras"] = dict(extras)
    return make_datamodule(spec.dataset, **kwargs)


THROUGHPUT_METRICS = (
    CompareMetric("train_samples_per_s", "throughput", "throughput"),
    CompareMetric("infer_samples_per_s", "throughput", "throughput"),
    CompareMetric("peak_memory_bytes", "memory", "record", lower_is_better=True),
)
