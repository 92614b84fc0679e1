"""``python -m bench nightly``: the nightly GPU workflow as one command, runnable on any machine.

1. Run the nightly suites (default :data:`bench.cli.NIGHTLY_SUITES`; ``--suites``) into
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

import argparse
import datetime as dt
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cli import UsageError, check_results_dir, make_executor, prepare_suite, run_and_report
from bench.compare import CompareError, CompareOptions, ComparisonReport, compare_dirs, history_dirs
from bench.records import RunRecord, write_atomic
from bench.suites import SUITES


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


def nightly_main(args: argparse.Namespace) -> int:
    """``python -m bench nightly`` for parsed arguments; raises UsageError/CompareError on bad input."""
    from bench.runner import check_data, global_rank

    unknown = [s for s in args.suites if s not in SUITES]
    if unknown or not args.suites:
        raise UsageError(f"unknown suite {', '.join(map(repr, unknown)) or '(none given)'}; valid suites: {', '.join(SUITES)}")
    results_dir = results_dir_for(args.results_dir, args.history)
    options = CompareOptions(factor=args.factor, sigmas=args.sigmas, accuracy_floor=args.accuracy_floor / 100,
                             fail_on=tuple(args.fail_on), suites=tuple(args.suites))  # fmt: skip
    plan = [(suite, *prepare_suite(args, suite)) for suite in args.suites]
    check_results_dir(results_dir)
    for _, specs, _ in plan:
        check_data(specs, args.data_dir)
    executor = make_executor(args, results_dir)

    outcomes = []
    for suite, specs, device in plan:
        start = time.perf_counter()
        result = run_and_report(args, suite, specs, device, results_dir, executor)
        outcomes.append(SuiteOutcome(suite, result.records, result.skipped, time.perf_counter() - start))
    if global_rank() != 0:  # other DDP ranks: rank 0 compares and writes the summary
        return 0

    comparison, note = compare_with_history(results_dir, args.history, args.keep, options)
    if comparison is not None:
        write_atomic(results_dir / "compare.json", json.dumps(comparison.to_dict(), indent=2, default=str))
    text = summary_markdown(args.profile, results_dir, outcomes, comparison, note, executor.describe())
    write_atomic(results_dir / "summary.md", text)
    print(text, end="")
    print(f"summary: {results_dir / 'summary.md'}")
    failed = any(o.failed for o in outcomes)
    return 1 if failed or (comparison is not None and comparison.exit_code() != 0) else 0
