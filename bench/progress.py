"""Suite progress: a rich live display on a terminal, one plain line per run elsewhere (CI, logs).

On a terminal: a suite bar (runs done / total, current run, elapsed, ETA) and an epoch bar
for the run in progress (fed by :class:`EpochProgress`, a Lightning callback). Not on a
terminal: one line when each run ends, with its status, headline metric, duration, and the
suite's elapsed time and ETA.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable
from typing import Any

import lightning as L
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from bench.records import RunRecord, RunSpec, error_line

# The one number that says how a run went: bench.tasks.headline (the run's task knows which).
Headline = Callable[[RunRecord], str]


def _fmt_seconds(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def run_seconds(record: RunRecord, fallback: float) -> float:
    """The run's own wall time, from its record's start and end (to the second); ``fallback``
    where the record has none. With parallel workers the time between two records is the
    suite's pace, not the length of a run."""
    try:
        return (dt.datetime.fromisoformat(record.finished_at) - dt.datetime.fromisoformat(record.started_at)).total_seconds()
    except (TypeError, ValueError):
        return fallback


class SuiteProgress:
    """Reports a suite's progress; use as a context manager around the suite."""

    def __init__(self, total: int, title: str, interactive: bool | None = None,
                 headline: Headline = error_line) -> None:  # fmt: skip
        self.total = total
        self.headline = headline
        self.title = title
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self.done = 0
        self.start = time.perf_counter()
        self._timed_runs = 0  # runs actually executed (skipped ones take no time: keep them out of the ETA)
        self._timed_seconds = 0.0
        self.copies_to_come = 0  # runs that will copy a run still to come: they take no time either
        self.console = Console(stderr=True, highlight=False)
        self._progress: Progress | None = None
        self._suite_task = self._epoch_task = None

    def __enter__(self) -> SuiteProgress:
        if self.interactive:
            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                # our ETA, not rich's: resumed runs and copies finish instantly and must not pace it
                TimeElapsedColumn(), TextColumn("eta {task.fields[eta]}"),
                console=self.console, transient=False,
            )  # fmt: skip
            self._progress.start()
            self._suite_task = self._progress.add_task(self.title, total=self.total, eta="-")
        else:
            print(f"{self.title}: {self.total} runs", flush=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()

    def eta(self) -> float | None:
        if not self._timed_runs:
            return None
        return self._timed_seconds / self._timed_runs * (self.total - self.done - self.copies_to_come)

    def run_started(self, spec: RunSpec, epochs: int | None = None) -> None:
        if self._progress is None:
            return
        self._progress.update(self._suite_task, description=f"{self.title} [{spec.label()}]")
        if self._epoch_task is not None:
            self._progress.remove_task(self._epoch_task)
            self._epoch_task = None
        if epochs:
            self._epoch_task = self._progress.add_task("  epochs", total=epochs)

    def epoch_done(self, epoch: int, metrics: dict[str, Any]) -> None:
        if self._progress is not None and self._epoch_task is not None:
            shown = " ".join(f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, float))
            self._progress.update(self._epoch_task, completed=epoch + 1, description=f"  epoch {epoch + 1}: {shown}")

    def note(self, text: str) -> None:
        """One line about the suite (not a run): on the bar's console, or printed."""
        if self._progress is not None:
            self._progress.console.print(text)
        else:
            print(text, flush=True)

    def run_finished(self, record: RunRecord, skipped: bool, seconds: float,
                     status: str | None = None) -> None:
        """Count a run as done; ``skipped`` ones (resumed, or ``status="same"``: a copy of an
        identical run) do not pace the ETA and are not printed on the interactive bar, except
        ``status="claimed"``: a run another process ran while this one waited for it.
        ``seconds`` is the time since the previous run ended: the suite's pace, which the ETA
        needs (a run's length when runs go one at a time, half of it on two workers)."""
        self.done += 1
        if not skipped:
            self._timed_runs += 1
            self._timed_seconds += seconds
        status = status or ("skip" if skipped else record.status)
        if self._progress is not None:
            eta = self.eta()
            self._progress.update(self._suite_task, advance=1, eta="-" if eta is None else _fmt_seconds(eta))
            if not skipped or status == "claimed":
                ran = "by another process" if skipped else _fmt_seconds(run_seconds(record, seconds))
                self._progress.console.print(f"{status:6s} {record.spec.label()}  {self.headline(record)}  (ran {ran})")
            return
        eta = self.eta()
        print(
            f"[{self.done}/{self.total}] {status:6s} {record.spec.label()}  {self.headline(record)}  "
            f"({'ran by another process; ' if status == 'claimed' else '' if skipped else 'ran ' + _fmt_seconds(run_seconds(record, seconds)) + '; '}"
            f"elapsed {_fmt_seconds(time.perf_counter() - self.start)}"
            f"{'' if eta is None else ', eta ' + _fmt_seconds(eta)})",
            flush=True,
        )


class EpochProgress(L.Callback):
    """Feeds the per-epoch bar from the module's history (see bench.training), and writes each
    validated epoch into the run's log (also in worker processes, which draw no bar)."""

    def __init__(self, progress: SuiteProgress | None, log: Any = None) -> None:
        self.progress = progress
        self.run_log = log

    # Validation runs inside the training epoch, so its history entry exists by train-epoch end
    # (callbacks' on_validation_epoch_end runs *before* the module's, too early to read it).
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        history = getattr(pl_module, "history", None)
        if not history:
            return
        entry = history[-1]
        if entry["epoch"] != trainer.current_epoch:  # not validated this epoch (val_every)
            return
        if self.progress is not None:  # None in a worker process: the run's log only
            self.progress.epoch_done(entry["epoch"], {k: v for k, v in entry.items() if k != "epoch"})
        if self.run_log is not None:
            self.run_log.info("epoch %s", {k: round(v, 5) if isinstance(v, float) else v for k, v in entry.items()})


def summary_table(recs: list[RunRecord], skipped: set[str] | frozenset[str] = frozenset(),
                  headline: Headline = error_line) -> str:  # fmt: skip
    """One line per run: model, condition, seed, status and headline metric (plain text).

    Runs in ``skipped`` (their record existed before this command) say so, without their
    earlier training time."""
    from tabulate import tabulate

    def status(r: RunRecord) -> str:
        if r.id in skipped:
            return "skipped (record exists)"
        return f"ok = {r.reused_from}" if r.reused_from else r.status

    rows = [
        (r.spec.model, r.spec.condition, r.spec.seed, status(r), headline(r),
         "" if r.train_seconds is None or r.id in skipped else f"{r.train_seconds:.1f}")
        for r in recs
    ]  # fmt: skip
    return tabulate(rows, headers=["model", "condition", "seed", "status", "result", "train s"])
