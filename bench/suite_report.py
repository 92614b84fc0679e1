"""A suite's report: its records, selected and marked, handed to its task's report, then written
as ``table.md``, ``table.tex`` and plots under ``<results>/<suite>/``.

This is where the record table (:func:`bench.reports.records_frame`) meets the tasks
(:mod:`bench.tasks`): the table is built once, with each record's current code version, and the
task's report turns the selected records into tables and figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench import records, reports
from bench.records import RunRecord
from bench.reports import NoRecordsError
from bench.tasks import current_version, get_task

__all__ = ["NoRecordsError", "record_table", "reported_records", "write_report"]


def record_table(recs: Sequence[RunRecord]) -> reports.pd.DataFrame:
    """:func:`bench.reports.records_frame` with this checkout's code versions (for the marks)."""
    return reports.records_frame(recs, current_version)


def reported_records(recs: Sequence[RunRecord]) -> tuple[set[str], set[str]]:
    """``(ids the reports use, ids among them from an older model code or harness)``: per
    profile, the records :func:`bench.reports.select_records` keeps that finished ok."""
    if not recs:
        return set(), set()
    frame = record_table(recs)
    used: set[str] = set()
    stale: set[str] = set()
    for profile in dict.fromkeys(frame["profile"]):
        chosen = reports.select_records(frame, profile)[0]
        chosen = chosen[chosen["status"] == "ok"]
        used |= set(chosen["id"])
        stale |= set(chosen["id"][~reports.is_current(chosen)])
    return used, stale


def write_report(results_dir: str | Path, suite: str, profile: str | None = None) -> list[Path]:
    """Write ``table.md``, ``table.tex`` and plots for ``suite`` from its records; return the paths.

    :class:`bench.reports.NoRecordsError` (one line) when there is nothing to report.
    """
    recs = records.load_records(results_dir, suite)
    if not recs:
        folder = records.suite_dir(results_dir, suite) / "records"
        raise NoRecordsError(f"no records for suite {suite!r} in {folder}; run it first: python -m bench run --suite {suite}")
    frame, profile = reports.select_records(record_table(recs), profile)
    ok = frame[frame["status"] == "ok"]
    failed = int((frame["status"] != "ok").sum())
    if ok.empty:
        raise NoRecordsError(f"all {failed} runs of suite {suite!r} ({profile}) failed; see the records' errors")
    folder = records.suite_dir(results_dir, suite)
    marks, unknown = reports.record_marks(ok, folder)
    ok = ok.assign(marks=marks)
    tables, paths = get_task(ok["task"].iloc[0]).report(suite, ok, profile, failed, folder)
    if unknown:
        tables[0].notes.append(f"Commits not checked against HEAD: git cannot tell in {folder} (no git, or "
                               "not in a repository); records of other commits would be marked §.")  # fmt: skip
    md, tex = folder / "table.md", folder / "table.tex"
    records.write_atomic(md, "\n".join(reports.to_markdown(t) for t in tables))
    records.write_atomic(tex, "\n".join(reports.to_latex(t) for t in tables))
    return [md, tex, *paths]
