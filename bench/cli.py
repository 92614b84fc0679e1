"""``python -m bench``: run suites, rebuild reports from records, list what exists.

Exit codes: 0 success; 1 the suite finished but some runs failed (their records say why);
2 bad input (unknown suite/model/profile, missing data, unwritable results directory), reported
as one line ``bench: error: ...`` on stderr without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tabulate import tabulate

from bench.suites import PROFILES, SUITES, TIME_MODES, build_suite

REFERENCE_SIZE = {"num_inputs": 3, "num_classes": 20}  # CharacterTrajectories, model defaults


class UsageError(Exception):
    """Bad input: printed as one line, exit code 2."""


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be comma-separated integers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="hippo-bench: HiPPO memory models against RNN/ODE/CDE baselines."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,report,ls}")

    run = sub.add_parser("run", help="run a suite (finished runs are skipped)", description=(
        "Run a suite: one JSON record per run under RESULTS/SUITE/records, then the report. "
        "Runs whose record finished ok are skipped unless --no-resume. "
        "Exit 1 if any run failed, 2 on bad input."))  # fmt: skip
    run.add_argument("--suite", required=True, metavar="NAME", help=f"one of: {', '.join(SUITES)}")
    run.add_argument("--profile", default="quick", metavar="P",
                     help=f"{' | '.join(PROFILES)} (default quick): smoke = minutes (CI), quick = CPU < 1 h, paper = reference protocol")  # fmt: skip
    run.add_argument("--models", type=_csv, metavar="A,B", help="only these models (default: all of the suite's)")
    run.add_argument("--seeds", type=_seeds, metavar="0,1,2", help="seeds (default: 0; paper: 0,1,2)")
    run.add_argument("--time", default="index", metavar="T",
                     help=f"time given to models: {' | '.join(TIME_MODES)} (default index, as in the paper)")  # fmt: skip
    run.add_argument("--data-dir", metavar="D", help="data directory (default: $BENCH_DATA_DIR)")
    run.add_argument("--results-dir", default="results", metavar="R", help="results directory (default: results)")
    run.add_argument("--device", default="auto", choices=("cpu", "cuda", "auto"), help="default auto")
    run.add_argument("--no-resume", action="store_true", help="rerun runs that already have a record")

    report = sub.add_parser("report", help="rebuild tables and plots from the records", description=(
        "Rebuild RESULTS/SUITE/table.md, table.tex and plots (PNG, PDF) from the records alone."))  # fmt: skip
    report.add_argument("--suite", required=True, metavar="NAME", help=f"one of: {', '.join(SUITES)}")
    report.add_argument("--results-dir", default="results", metavar="R", help="results directory (default: results)")
    report.add_argument("--profile", metavar="P", help="report this profile's records (default: the largest present)")

    ls = sub.add_parser("ls", help="list models, suites or datasets", description="List models, suites or datasets.")
    ls.add_argument("what", choices=("models", "suites", "datasets"))
    return parser


def check_results_dir(path: Path) -> None:
    """Create ``path`` and write a probe file, so an unwritable directory fails before any run."""
    probe = path / ".bench-write-probe"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"results directory {str(path)!r} is not writable: {e.strerror or e}") from None


def cmd_ls(what: str) -> int:
    if what == "suites":
        print(tabulate([(name, desc) for name, (desc, _) in SUITES.items()], headers=["suite", "description"]))
    elif what == "datasets":
        from bench.data import DATASETS

        print(tabulate([(name, desc) for name, (_, desc) in DATASETS.items()], headers=["dataset", "description"]))
    else:
        from bench.models import create_model, get_model_entry, list_models

        rows = []
        for name in list_models():
            try:
                params = f"{sum(p.numel() for p in create_model(name, **REFERENCE_SIZE).parameters()):,}"
            except Exception as e:  # a model that cannot be built is listed, not fatal
                params = f"unavailable ({type(e).__name__})"
            rows.append((name, get_model_entry(name).description, params))
        print(tabulate(rows, headers=["model", "description", "parameters (3 in, 20 classes)"],
                       colalign=("left", "left", "right")))  # fmt: skip
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from bench import report as report_mod
    from bench.progress import summary_table
    from bench.runner import check_data, resolve_device, run_suite

    if args.time not in TIME_MODES:
        raise UsageError(f"unknown time mode {args.time!r}; valid: {', '.join(TIME_MODES)}")
    try:
        specs = build_suite(args.suite, args.profile, args.seeds, args.time, args.models)
        device = resolve_device(args.device)
    except ValueError as e:
        raise UsageError(str(e)) from None
    results_dir = Path(args.results_dir)
    check_results_dir(results_dir)
    check_data(specs, args.data_dir)
    result = run_suite(
        specs, results_dir, data_dir=args.data_dir, device=device, resume=not args.no_resume,
        title=f"{args.suite} ({args.profile})",
    )  # fmt: skip
    print(summary_table(result.records))
    try:
        paths = report_mod.write_report(results_dir, args.suite, args.profile)
        print(f"report: {paths[0].parent}")
    except report_mod.NoRecordsError as e:
        print(f"report: skipped ({e})")
    if result.failed:
        print(f"{len(result.failed)} of {len(result.records)} runs failed; see their records and logs in "
              f"{results_dir / args.suite}", file=sys.stderr)  # fmt: skip
        return 1
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from bench.report import NoRecordsError, write_report

    if args.suite not in SUITES:
        raise UsageError(f"unknown suite {args.suite!r}; valid suites: {', '.join(SUITES)}")
    if args.profile is not None and args.profile not in PROFILES:
        raise UsageError(f"unknown profile {args.profile!r}; valid profiles: {', '.join(PROFILES)}")
    try:
        paths = write_report(Path(args.results_dir), args.suite, args.profile)
    except NoRecordsError as e:
        raise UsageError(str(e)) from None
    for p in paths:
        print(p)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from bench.runner import DataUnavailableError

    try:
        if args.command == "ls":
            return cmd_ls(args.what)
        if args.command == "report":
            return cmd_report(args)
        return cmd_run(args)
    except (UsageError, DataUnavailableError) as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; finished runs are recorded, rerun the same command to resume", file=sys.stderr)
        return 130
