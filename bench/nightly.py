"""``python -m bench nightly``: the nightly GPU workflow as one command, runnable on any machine.

1. Run the nightly suites (default :data:`NIGHTLY_SUITES`; ``--suites``) into
   ``--results-dir``, resuming: a night that was interrupted and restarted redoes only what is
   missing. Every suite's data is checked before the first run.
2. Compare with history: the last ``--keep`` dated result directories under ``--history ROOT``
   (tonight's left out), against their median (:func:`bench.compare.history_dirs`,
   :func:`bench.compare.compare_dirs`). The first night (no history) compares nothing.
3. Write ``summary.md`` (suite summaries, failed runs, the comparison) and ``compare.json``
   into the results directory, and print the summary.

Exit code: 0 when every run finished ok and nothing of a ``--fail-on`` kind regressed; 1 when a
run failed or something regressed; 2 on bad input (before any run).

On a laptop: ``python -m bench nightly --profile smoke --device cpu --history nightly/smoke``
(tonight's directory defaults to ``ROOT/<UTC date>``).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import api
from bench.api import ExecutorOptions, UsageError
from bench.compare import CompareError, CompareOptions, ComparisonReport, compare_dirs, history_dirs
from bench.records import RunRecord, write_atomic
from bench.suites import SUITES

NIGHTLY_SUITES = ("timescale", "pmnist", "funcapprox", "throughput")


@dataclass
class SuiteOutcome:
    """One suite of the night: its records, how many were resumed, and how long it took."""

    suite: str
    records: list[RunRecord]
    resumed: int
    seconds: float

    @property
    def failed(self) -> list[RunRecord]:
        return [r for r in self.records if r.status != "ok"]


def results_dir_for(results_dir: str | None, history: str | None, today: dt.date | None = None) -> Path:
    """``--results-dir``, else ``HISTORY/<UTC date>``; UsageError when neither is given."""
    if results_dir:
        return Path(results_dir)
    if history:
        return Path(history) / (today or dt.datetime.now(dt.UTC).date()).isoformat()
    raise UsageError("nightly needs --results-dir DIR or --history ROOT (then DIR = ROOT/<UTC date>)")


def _duration(seconds: float) -> str:
    minutes, s = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{s:02d}s"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def summary_markdown(
    profile: str,
    results_dir: Path,
    outcomes: Sequence[SuiteOutcome],
    comparison: ComparisonReport | None,
    comparison_note: str,
    executor: dict[str, Any],
) -> str:
    """The night in Markdown: verdict, one row per suite, failed runs, then the comparison."""
    failed = [r for o in outcomes for r in o.failed]
    regressed = comparison is not None and comparison.exit_code() != 0
    verdict = ("**FAILED**" if failed else "") + (" and " if failed and regressed else "") + \
        ("**REGRESSED**" if regressed else "")  # fmt: skip
    lines = [
        f"# Nightly benchmark ({profile})", "",
        f"{verdict or '**OK**'}: {sum(len(o.records) for o in outcomes)} runs, {len(failed)} failed"
        + ("" if comparison is None else f", {len(comparison.regressions(comparison.options.fail_on))} failing regression(s)")
        + ".", "",
        f"- results: `{results_dir}`",
        f"- finished: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}",
        f"- executor: {', '.join(f'{k} {v}' for k, v in executor.items() if v is not None)}",
        "", "## Suites", "",
        "| suite | runs | ok | failed | resumed | time |", "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for o in outcomes:
        lines.append(f"| {o.suite} | {len(o.records)} | {len(o.records) - len(o.failed)} | {len(o.failed)} "
                     f"| {o.resumed} | {_duration(o.seconds)} |")  # fmt: skip
    if failed:
        lines += ["", "### Failed runs", "", "| suite | model | condition | seed | error |", "|---|---|---|---|---|"]
        for r in failed:
            error = (r.error or r.status).strip().splitlines()[0][:200]
            lines.append(f"| {r.spec.suite} | {r.spec.model} | {_cell(r.spec.condition)} | {r.spec.seed} | {_cell(error)} |")
    lines.append("")
    if comparison is not None:
        lines.append(comparison.to_markdown())
    else:
        lines += ["## Benchmark comparison", "", comparison_note, ""]
    return "\n".join(lines)


def compare_with_history(
    results_dir: Path, history: str | None, keep: int, options: CompareOptions
) -> tuple[ComparisonReport | None, str]:
    """The comparison with the last ``keep`` nights under ``history``, or None and why not."""
    if not history:
        return None, "No `--history` given: nothing compared."
    baselines = history_dirs(history, exclude=results_dir, keep=keep)
    if not baselines:
        return None, f"No earlier results under `{history}` (first night): nothing compared."
    try:
        return compare_dirs(baselines, results_dir, options), ""
    except CompareError as e:  # tonight has no record at all (every suite stopped early)
        return None, f"Comparison skipped: {e}"


def nightly(
    *,
    profile: str = "paper",
    suites: Sequence[str] = NIGHTLY_SUITES,
    results_dir: str | Path | None = None,
    history: str | Path | None = None,
    keep: int = 7,
    data_dir: str | Path | None = None,
    device: str = "auto",
    options: CompareOptions | None = None,
    executor: ExecutorOptions | None = None,
) -> int:
    """The nightly job: run ``suites`` (resuming), compare with history, write ``summary.md``.

    Returns the exit code (0 ok, 1 a failed run or a ``fail_on`` regression); raises
    :class:`bench.api.UsageError` on bad input, before any run.
    """
    from bench.runner import check_data, global_rank

    unknown = [s for s in suites if s not in SUITES]
    if unknown or not suites:
        raise UsageError(f"unknown suite {', '.join(map(repr, unknown)) or '(none given)'}; valid suites: {', '.join(SUITES)}")
    folder = results_dir_for(None if results_dir is None else str(results_dir),
                             None if history is None else str(history))  # fmt: skip
    options = options or CompareOptions()
    options = CompareOptions(options.factor, options.sigmas, options.accuracy_floor, options.fail_on, tuple(suites))
    plan = [(suite, *api.prepare(suite, profile=profile, device=device, executor=executor)) for suite in suites]
    api.check_results_dir(folder)
    for _, specs, _ in plan:
        check_data(specs, data_dir)

    outcomes = []
    description: dict[str, Any] = {}
    for suite, specs, torch_device in plan:
        start = time.perf_counter()
        result = api.run_specs(specs, torch_device, results_dir=folder, data_dir=data_dir, executor=executor,
                               title=f"{suite} ({profile})", profile=profile)  # fmt: skip
        description = result.executor
        if global_rank() == 0:
            from bench.progress import summary_table
            from bench.tasks import headline

            print(summary_table(result.records, result.skipped_ids, headline))
        outcomes.append(SuiteOutcome(suite, result.records, result.skipped, time.perf_counter() - start))
    if global_rank() != 0:  # other DDP ranks: rank 0 compares and writes the summary
        return 0

    comparison, note = compare_with_history(folder, None if history is None else str(history), keep, options)
    if comparison is not None:
        write_atomic(folder / "compare.json", json.dumps(comparison.to_dict(), indent=2, default=str))
    text = summary_markdown(profile, folder, outcomes, comparison, note, description)
    write_atomic(folder / "summary.md", text)
    print(text, end="")
    print(f"summary: {folder / 'summary.md'}")
    failed = any(o.failed for o in outcomes)
    return 1 if failed or (comparison is not None and comparison.exit_code() != 0) else 0
