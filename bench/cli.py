"""``python -m bench``: run suites, the nightly, comparisons, reports from records, listings.

Exit codes: 0 success; 1 the suite finished but some runs failed (their records say why), or
(``compare``, ``nightly``) a regression was found; 2 bad input (unknown suite/model/profile,
missing data, unwritable results directory, missing comparison directory), reported as one
line ``bench: error: ...`` on stderr without a traceback.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from tabulate import tabulate

from bench import api
from bench.api import ExecutorOptions, UsageError
from bench.compare import KINDS, CompareError, CompareOptions, add_compare_arguments, parse_fail_on
from bench.nightly import NIGHTLY_SUITES
from bench.records import BenchWarning
from bench.suites import PROFILES, SUITES, TIME_MODES

REFERENCE_SIZE = {"num_inputs": 3, "num_classes": 20}  # CharacterTrajectories, model defaults


def _csv(text: str) -> list[str]:
    """Comma-separated items, duplicates dropped (a repeated seed or model would run twice)."""
    items = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return items


def _seeds(text: str) -> list[int]:
    try:
        return list(dict.fromkeys(int(s) for s in _csv(text)))
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be comma-separated integers, got {text!r}") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _int_or_text(text: str) -> int | str:
    """An integer, or the text as given: the API refuses it in one line naming the flag."""
    try:
        return int(text)
    except ValueError:
        return text


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def add_execution_arguments(parser: argparse.ArgumentParser) -> None:
    """Where runs execute (``--executor`` ...) and how one run trains (``--devices`` ...)."""
    group = parser.add_argument_group("scale-out (records are written by this process only)")
    group.add_argument("--executor", default="local", choices=("local", "processes", "submitit"), metavar="E",
                       help="local (default: one run at a time) | processes | submitit")  # fmt: skip
    group.add_argument("--workers", type=_positive, metavar="N",
                       help="parallel runs (default: a GPU / 2 CPU cores each)")  # fmt: skip
    group.add_argument("--threads", type=_int_or_text, metavar="N",
                       help="torch threads per run (default: 1 on CPU; CUDA runs keep torch's)")  # fmt: skip
    group.add_argument("--cluster", default="auto", choices=("auto", "slurm", "local", "debug"), metavar="C",
                       help="submitit: auto | slurm | local (subprocesses) | debug")  # fmt: skip
    group.add_argument("--slurm-partition", metavar="P", help="SLURM partition")
    group.add_argument("--slurm-time", type=_positive, default=60, metavar="MIN", help="job time limit (60)")
    group.add_argument("--slurm-gpus-per-node", type=int, metavar="N", help="default: --devices")
    group.add_argument("--devices", type=_positive, default=1, metavar="N", help="devices per run (1)")
    group.add_argument("--num-nodes", type=_positive, default=1, metavar="N", help="nodes per run (1)")
    group.add_argument("--strategy", default="auto", metavar="S", help="Lightning strategy (auto: ddp if >1)")


def add_include_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--include", action="append", default=[], metavar="FILE.py|MODULE",
                        help="import this file or module first (your models: register_model); repeatable")  # fmt: skip


def add_suite_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``run`` and ``nightly``: profile, data, device, results."""
    parser.add_argument("--data-dir", metavar="D",
                        help="existing data directory (default: $BENCH_DATA_DIR, else the per-user cache)")  # fmt: skip
    parser.add_argument("--device", default="auto", choices=("cpu", "cuda", "auto"), help="default auto")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="hippo-bench: HiPPO memory models against RNN/ODE/CDE baselines."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,nightly,compare,report,ls}")

    run = sub.add_parser("run", help="run a suite (finished runs are skipped)", description=(
        "Run a suite: one JSON record per run under RESULTS/SUITE/records, then the report. "
        "Runs whose record finished ok are skipped unless --no-resume. "
        "Exit 1 if any run failed, 2 on bad input."), usage="python -m bench run --suite NAME [options]")  # fmt: skip
    run.add_argument("--suite", required=True, metavar="NAME", help=f"one of: {', '.join(SUITES)}")
    run.add_argument("--profile", default="quick", metavar="P",
                     help=f"{' | '.join(PROFILES)} (default quick): smoke = minutes (CI), quick = CPU < 1 h, paper = reference protocol")  # fmt: skip
    run.add_argument("--models", type=_csv, metavar="A,B",
                     help="registered models or module:Class paths (default: the suite's)")  # fmt: skip
    add_include_argument(run)
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                     help="override a training setting or model argument (lr=3e-4, epochs=20, "
                          "hidden_size=128; train./model. prefixes where ambiguous); repeatable")  # fmt: skip
    run.add_argument("--seeds", type=_seeds, metavar="0,1,2", help="seeds (default: smoke 0; quick 0,1; paper 0,1,2)")
    run.add_argument("--time", metavar="T",
                     help=f"time given to models: {' | '.join(TIME_MODES)} (default: the suite's; index for timescale, as in the paper)")  # fmt: skip
    add_suite_arguments(run)
    run.add_argument("--results-dir", default="results", metavar="R", help="results directory (default: results)")
    run.add_argument("--dataset", metavar="NAME", help="timescale/missing: uea:<Name> (see `ls datasets`)")
    run.add_argument("--sample-rate", type=_positive_float, metavar="HZ", help="the --dataset's rate")
    run.add_argument("--no-resume", action="store_true", help="rerun runs that already have a record")
    run.add_argument("--logger", choices=("csv", "tensorboard"), metavar="L",
                     help="csv | tensorboard: curves under RESULTS/SUITE/curves")
    add_execution_arguments(run)

    nightly = sub.add_parser("nightly", help="the nightly: suites, comparison with history, summary.md",
                             usage="python -m bench nightly [--profile P] --results-dir R [--history ROOT] [options]",
                             description=(
        "Run the nightly suites (resuming into --results-dir), compare with the median of the "
        "previous result directories under --history, write RESULTS/summary.md. Exit 1 if a run "
        "failed or a --fail-on kind regressed, 2 on bad input."))  # fmt: skip
    nightly.add_argument("--profile", default="paper", metavar="P", help=f"{' | '.join(PROFILES)} (default paper)")
    nightly.add_argument("--suites", type=_csv, default=list(NIGHTLY_SUITES), metavar="A,B",
                         help=f"default: {','.join(NIGHTLY_SUITES)}")  # fmt: skip
    add_suite_arguments(nightly)
    nightly.add_argument("--results-dir", metavar="R", help="tonight's directory (default: ROOT/<UTC date>)")
    nightly.add_argument("--history", metavar="ROOT", help="dated result directories of earlier nights")
    nightly.add_argument("--keep", type=_positive, default=7, metavar="N", help="compare with the last N nights (7)")
    nightly.add_argument("--fail-on", type=parse_fail_on, default=KINDS, metavar="KINDS",
                         help="regressions that fail: accuracy,throughput,memory (default), all, none")  # fmt: skip
    nightly.add_argument("--factor", type=float, default=1.1, metavar="F", help="throughput/memory factor (1.1)")
    nightly.add_argument("--sigmas", type=float, default=2.0, metavar="K", help="accuracy: pooled seed std (2)")
    nightly.add_argument("--accuracy-floor", type=float, default=0.5, metavar="PP", help="accuracy: at least PP points (0.5)")
    add_execution_arguments(nightly)

    compare = sub.add_parser("compare", help="compare runs with a baseline (regressions)",
                             description="Compare a candidate results directory with one or more baseline "
                             "directories (several: their median). Exit 1 on a --fail-on regression or when nothing was compared, "
                             "2 on bad input.")  # fmt: skip
    add_compare_arguments(compare)

    report = sub.add_parser("report", help="rebuild tables and plots from the records", description=(
        "Rebuild RESULTS/SUITE/table.md, table.tex and plots (PNG, PDF) from the records alone."))  # fmt: skip
    report.add_argument("--suite", required=True, metavar="NAME", help=f"one of: {', '.join(SUITES)}")
    report.add_argument("--results-dir", default="results", metavar="R", help="results directory (default: results)")
    report.add_argument("--profile", metavar="P", help="report this profile's records (default: the largest present)")
    add_include_argument(report)

    ls = sub.add_parser("ls", help="list models, suites or datasets", description="List models, suites or datasets.")
    ls.add_argument("what", choices=("models", "suites", "datasets"))
    add_include_argument(ls)
    return parser


def cmd_ls(what: str) -> int:
    if what == "suites":
        rows = [(name, s.description, ", ".join(s.time_modes), len(s.models)) for name, s in SUITES.items()]
        print(tabulate(rows, headers=["suite", "description", "time modes", "default models"]))
    elif what == "datasets":
        from bench.data import get_dataset_entry, list_datasets

        rows = [(e.name, e.shape(), e.num_classes, f"{e.sample_rate_hz:g} Hz" if e.sample_rate_hz else "–", e.description)
                for e in map(get_dataset_entry, list_datasets())]  # fmt: skip
        rows.append(("uea:<Name>", "any", "any", "--sample-rate", "any UEA archive dataset in the data directory "
                     "(.ts or per-dimension .arff files), e.g. uea:BasicMotions"))  # fmt: skip
        print(tabulate(rows, headers=["dataset", "channels x steps", "classes", "sampling rate", "description"]))
    else:
        from bench.models import create_model, get_model_entry, list_models

        rows = []
        for name in list_models():
            try:
                params = f"{sum(p.numel() for p in create_model(name, **REFERENCE_SIZE).parameters()):,}"
            except Exception as e:  # a model that cannot be built is listed, not fatal
                params = f"unavailable ({type(e).__name__})"
            entry = get_model_entry(name)
            rows.append((name, entry.description, params, entry.source, ", ".join(entry.tags) or "–",
                         ", ".join(entry.references) or "none: family defaults"))  # fmt: skip
        print(tabulate(rows, headers=["model", "description", "parameters (3 in, 20 classes)", "from", "suite tags",
                                      "reference settings"], colalign=("left", "left", "right", "left", "left", "left")))  # fmt: skip
    return 0


def executor_options(args: argparse.Namespace) -> ExecutorOptions:
    """The ``--executor`` and device options as the API's :class:`bench.api.ExecutorOptions`."""
    return ExecutorOptions(args.executor, args.workers, args.cluster, args.slurm_partition, args.slurm_time,
                           args.slurm_gpus_per_node, args.devices, args.num_nodes, args.strategy,
                           args.threads)  # fmt: skip


def print_result(result: object, results_dir: Path, suite: str) -> None:
    """The run table, where the report went, and (on stderr) how many runs failed."""
    from bench.progress import summary_table
    from bench.runner import global_rank
    from bench.tasks import headline

    if global_rank() != 0:  # other DDP ranks: rank 0 reports
        return
    print(summary_table(result.records, result.skipped_ids, headline))
    if result.report_paths:
        print(f"report: {result.report_paths[0].parent}")
    elif result.report_note:
        print(f"report: skipped ({result.report_note})")
    if result.failed:
        print(f"{len(result.failed)} of {len(result.records)} runs failed; see their records and logs in "
              f"{results_dir / suite}", file=sys.stderr)  # fmt: skip


def cmd_run(args: argparse.Namespace) -> int:
    results_dir = Path(args.results_dir)
    result = api.run(args.suite, profile=args.profile, models=args.models, seeds=args.seeds, time=args.time,
                     data_dir=args.data_dir, results_dir=results_dir, device=args.device,
                     resume=not args.no_resume, executor=executor_options(args), logger=args.logger,
                     dataset=args.dataset, sample_rate=args.sample_rate, include=args.include,
                     overrides=parse_overrides(args.overrides))  # fmt: skip
    print_result(result, results_dir, args.suite)
    return 1 if result.failed else 0


def parse_overrides(items: list[str]) -> dict[str, object]:
    from bench.settings import SettingsError
    from bench.settings import parse_overrides as parse

    try:
        return parse(items)
    except SettingsError as e:
        raise UsageError(str(e)) from None


def cmd_report(args: argparse.Namespace) -> int:
    for p in api.report(args.suite, results_dir=args.results_dir, profile=args.profile, include=args.include):
        print(p)
    return 0


def _format_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    if issubclass(category, BenchWarning):
        return f"bench: warning: {message}\n"
    return _default_format_warning(message, category, filename, lineno, line)


_default_format_warning = warnings.formatwarning


def main(argv: list[str] | None = None) -> int:
    warnings.formatwarning = _format_warning  # bench's own warnings read like its one-line errors
    args = build_parser().parse_args(argv)
    import torch

    from bench.runner import DataUnavailableError

    # Runs flush subnormal floats (bench.runner.execute), but the mode is per thread and only
    # threads created afterwards inherit it: set it in this process of our own before torch's
    # intra-op pool exists, so every pool thread flushes too.
    torch.set_flush_denormal(True)

    try:
        if args.command == "ls":
            api.include_files(args.include)
            return cmd_ls(args.what)
        if args.command == "report":
            return cmd_report(args)
        if args.command == "compare":
            from bench.compare import compare_main

            return compare_main(args)
        api.check_data_dir(args.data_dir)
        if args.command == "nightly":
            from bench.nightly import nightly

            options = CompareOptions(factor=args.factor, sigmas=args.sigmas, accuracy_floor=args.accuracy_floor / 100,
                                     fail_on=tuple(args.fail_on))  # fmt: skip
            return nightly(profile=args.profile, suites=args.suites, results_dir=args.results_dir,
                           history=args.history, keep=args.keep, data_dir=args.data_dir, device=args.device,
                           options=options, executor=executor_options(args))  # fmt: skip
        return cmd_run(args)
    except (UsageError, DataUnavailableError, CompareError) as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; finished runs are recorded, rerun the same command to resume", file=sys.stderr)
        return 130
