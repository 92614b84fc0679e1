"""hippo-bench as a library: what ``python -m bench`` runs, as typed functions for notebooks.

    import bench

    result = bench.run("timescale", profile="smoke", models=["hippo-legs", "lstm"],
                       data_dir="../shared/data", results_dir="my-results")
    frame = bench.load_results("my-results", "timescale")   # one row per run
    frame.groupby(["model", "condition"])["test_acc"].mean()
    bench.report("timescale", results_dir="my-results")     # tables and plots

The command line (:mod:`bench.cli`) and the nightly command (:mod:`bench.nightly`) are thin
layers over :func:`run`, :func:`prepare` and :func:`report`. Bad input raises
:class:`UsageError` with one line saying what was wrong.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import records
from bench.suites import PROFILES, SUITES, TIME_MODES, build_suite


class UsageError(ValueError):
    """Bad input (unknown suite, model, profile, unwritable folder, ...): one line, exit code 2."""


@dataclass(frozen=True)
class ExecutorOptions:
    """Where the runs execute (:mod:`bench.executors`) and how one run trains on devices."""

    kind: str = "local"  # local | processes | submitit
    workers: int | None = None
    cluster: str = "auto"
    slurm_partition: str | None = None
    slurm_time: int = 60
    slurm_gpus_per_node: int | None = None
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    threads: int | None = None  # torch threads per run (None: 1 on CPU, CUDA runs left alone)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. setup= for tests

    def __post_init__(self) -> None:
        from bench.environment import run_threads

        try:
            run_threads(self.threads, "cpu")
        except ValueError as e:
            raise UsageError(str(e)) from None

    def build(self, results_dir: Path) -> Any:
        from bench.executors import make_executor

        try:
            return make_executor(self.kind, workers=self.workers, threads=self.threads,
                                 results_dir=results_dir, cluster=self.cluster,
                                 slurm_partition=self.slurm_partition, slurm_time=self.slurm_time,
                                 slurm_gpus_per_node=self.slurm_gpus_per_node, devices=self.devices,
                                 num_nodes=self.num_nodes, **self.extra)  # fmt: skip
        except ValueError as e:
            raise UsageError(str(e)) from None


MAX_SEED = 2**32 - 1  # numpy's (and Lightning's) seed range is 0 .. 2**32 - 1


def check_seeds(seeds: Sequence[int] | None) -> None:
    """Seeds are integers in numpy's range, refused before the suite starts (not one failed run each)."""
    for seed in seeds or ():
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise UsageError(f"--seeds must be integers from 0 to {MAX_SEED} (numpy's seed range), got {seed!r}")


def prepare(
    suite: str,
    *,
    profile: str = "quick",
    seeds: Sequence[int] | None = None,
    time: str | None = None,
    models: Sequence[str] | None = None,
    device: str = "auto",
    executor: ExecutorOptions | None = None,
    dataset: str | None = None,
    sample_rate: float | None = None,
    include: Sequence[str | Path] = (),
    overrides: Mapping[str, Any] | None = None,
) -> tuple[list[records.RunSpec], Any]:
    """The suite's run specs (with the device, trainer options and ``overrides``) and the torch
    device. ``include`` files and modules are imported first (:func:`bench.plugins.include`)."""
    from bench.runner import resolve_device, with_trainer_options

    options = executor or ExecutorOptions()
    check_seeds(seeds)
    if time is not None and time not in TIME_MODES:
        raise UsageError(f"unknown time mode {time!r}; valid: {', '.join(TIME_MODES)}")
    include_files(include)
    try:
        specs = build_suite(suite, profile, seeds, time, models, dataset, sample_rate)
        specs = apply_overrides(specs, overrides or {})
        torch_device = resolve_device(device)
        specs = with_trainer_options(specs, options.devices, options.num_nodes, options.strategy,
                                     torch_device.type)  # fmt: skip
    except ValueError as e:
        raise UsageError(str(e)) from None
    return specs, torch_device


def include_files(include: Sequence[str | Path]) -> None:
    """Import the ``--include`` files and modules (:mod:`bench.plugins`); one line if one fails."""
    from bench.plugins import IncludeError, include_all

    try:
        include_all(include)
    except IncludeError as e:
        raise UsageError(str(e)) from None


def apply_overrides(specs: list[records.RunSpec], overrides: Mapping[str, Any]) -> list[records.RunSpec]:
    """``specs`` with the ``--set`` overrides applied to their training settings and model
    arguments, validated (:func:`bench.settings.split_overrides`) and named in ``provenance``."""
    if not overrides:
        return specs
    from bench.models import model_parameters
    from bench.settings import TrainSettings, split_overrides
    from bench.tasks import get_task

    if not all(get_task(s.task).settings for s in specs):
        raise ValueError(f"--set applies to the suites that train; suite {specs[0].suite!r} has no settings")
    model_keys = {m: set(model_parameters(m)) for m in dict.fromkeys(s.model for s in specs)}
    train, model = split_overrides(overrides, model_keys)
    return [
        dataclasses.replace(
            s, train=TrainSettings.from_dict({**s.train, **train}).to_dict(), model_args={**s.model_args, **model},
            provenance={**s.provenance, "overrides": dict(overrides)},
        )
        for s in specs
    ]


def check_results_dir(path: Path) -> None:
    """Create ``path`` and write a probe file, so an unwritable directory fails before any run."""
    probe = path / ".bench-write-probe"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"results directory {str(path)!r} is not writable: {e.strerror or e}") from None


def check_data_dir(data_dir: str | Path | None, flag: str = "--data-dir") -> None:
    """A named data directory must be an existing folder (a typo is refused, not created)."""
    if data_dir is None:
        return
    from bench.data.paths import DataDirError
    from bench.data.paths import check_data_dir as check

    try:
        check(Path(data_dir).expanduser(), flag)
    except DataDirError as e:
        raise UsageError(str(e)) from None


def run_specs(
    specs: Sequence[records.RunSpec],
    torch_device: Any,
    *,
    results_dir: str | Path = "results",
    data_dir: str | Path | None = None,
    resume: bool = True,
    executor: ExecutorOptions | None = None,
    title: str = "suite",
    interactive: bool | None = None,
    write_report: bool = True,
    profile: str | None = None,
    logger: str | None = None,
) -> Any:
    """Run prepared specs (data checked first), write their records, then the suite's report."""
    from bench.runner import check_data, global_rank, run_suite
    from bench.training import check_logger

    try:
        check_logger(logger)
    except ValueError as e:
        raise UsageError(str(e)) from None
    results_dir = Path(results_dir)
    check_results_dir(results_dir)
    if global_rank() == 0 and specs:
        from bench.environment import dirty_results_warning

        if (message := dirty_results_warning(results_dir)) is not None:
            warnings.warn(message, records.BenchWarning, stacklevel=2)
    check_data(specs, data_dir)
    built = (executor or ExecutorOptions()).build(results_dir)
    if global_rank() == 0 and specs:
        from bench.executors import threads_note

        if (note := threads_note(built, torch_device, len(specs))) is not None:
            print(note, flush=True)
    try:
        result = run_suite(specs, results_dir, data_dir=data_dir, device=torch_device, resume=resume,
                           title=title, executor=built, interactive=interactive, logger=logger)  # fmt: skip
    except ValueError as e:  # bad specs (settings, accelerator), refused before any run
        raise UsageError(str(e)) from None
    result.executor = built.describe()
    if write_report and global_rank() == 0 and specs:
        from bench import suite_report

        try:
            result.report_paths = suite_report.write_report(results_dir, specs[0].suite, profile)
        except suite_report.NoRecordsError as e:
            result.report_note = str(e)
    return result


def run(
    suite: str,
    *,
    profile: str = "quick",
    models: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    time: str | None = None,
    data_dir: str | Path | None = None,
    results_dir: str | Path = "results",
    device: str = "auto",
    resume: bool = True,
    executor: str | ExecutorOptions = "local",
    workers: int | None = None,
    threads: int | None = None,
    interactive: bool | None = None,
    report: bool = True,
    logger: str | None = None,
    dataset: str | None = None,
    sample_rate: float | None = None,
    include: Sequence[str | Path] = (),
    overrides: Mapping[str, Any] | None = None,
) -> Any:
    """Run ``suite`` under ``profile`` and return its :class:`bench.runner.SuiteResult`.

    Finished runs (their record is ``ok``) are skipped unless ``resume=False``; each run writes
    one record under ``results_dir/suite/records``; the report is rebuilt at the end
    (``result.report_paths``). ``models`` takes any registered model (default: the suite's list),
    ``time`` is ``"index"`` or ``"physical"`` (default: the suite's). ``executor`` is ``"local"``,
    ``"processes"`` (with ``workers``) or ``"submitit"``, or an :class:`ExecutorOptions`.
    ``threads``: torch threads per run (default: one on CPU, which does not collapse on a busy
    machine; CUDA runs keep torch's own; ignored when ``executor`` is an :class:`ExecutorOptions`,
    which has its own ``threads``).
    ``dataset`` (timescale, missing): a registered dataset or ``uea:<Name>`` (any UEA dataset in
    the data directory), with ``sample_rate`` (Hz) where the registry does not know it.
    ``logger`` (``"csv"`` or ``"tensorboard"``) writes each run's per-epoch curves with
    Lightning's own logger under ``results_dir/suite/curves/<run id>``. ``include``: ``.py``
    files or modules to import first (models from outside, carried to every worker);
    ``overrides``: ``{"lr": 3e-4, "model.hidden_size": 128}``, as ``--set`` on the command line.
    """
    check_data_dir(data_dir, "data_dir")
    options = executor if isinstance(executor, ExecutorOptions) else ExecutorOptions(executor, workers, threads=threads)
    specs, torch_device = prepare(suite, profile=profile, seeds=seeds, time=time, models=models, device=device,
                                  executor=options, dataset=dataset, sample_rate=sample_rate,
                                  include=include, overrides=overrides)  # fmt: skip
    return run_specs(specs, torch_device, results_dir=results_dir, data_dir=data_dir, resume=resume,
                     executor=options, title=f"{suite} ({profile})", interactive=interactive,
                     write_report=report, profile=profile, logger=logger)  # fmt: skip


def report(suite: str, *, results_dir: str | Path = "results", profile: str | None = None,
           include: Sequence[str | Path] = ()) -> list[Path]:
    """Rebuild ``table.md``, ``table.tex`` and the plots of ``suite`` from its records alone
    (``include``: the files that register the records' outside models, for their versions)."""
    from bench.suite_report import NoRecordsError, write_report

    include_files(include)
    try:
        SUITES.get(suite)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if profile is not None and profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    try:
        return write_report(Path(results_dir), suite, profile)
    except NoRecordsError as e:
        raise UsageError(str(e)) from None


def load_results(results_dir: str | Path = "results", suite: str | None = None, *,
                 include_stale: bool = False) -> Any:  # fmt: skip
    """The records under ``results_dir`` (or of one ``suite``) as a ``pandas.DataFrame``.

    By default the records the reports use (:func:`bench.suite_report.reported_records`): per
    profile and table cell the latest setting and model code, finished ok, so a ``groupby``
    gives the report's numbers. ``include_stale=True`` returns every record (failed ones, older
    harness versions, superseded settings); ``stale`` then says which are not what the reports
    use, and ``harness_version`` / ``code_version`` say what they ran on.

    One row per record: ``stale``, ``harness_version``, ``id``, ``status``, ``error``, ``code_version``, the spec (``suite``,
    ``task``, ``dataset``, ``condition``, ``model``, ``seed``, ``profile``), ``data.*`` (the data
    protocol), ``train.*`` (the effective training settings), ``model.*`` (the model's resolved
    configuration), the metrics (numeric: ``test_acc``, ``test_acc_eval_selected``, ``mse``, ...),
    ``rate.<r>`` (test accuracy at rate ``r``), ``throughput.*``, ``env.*``, ``num_parameters``,
    ``train_seconds``, ``peak_memory_bytes``, ``started_at`` and ``finished_at``.
    """
    import pandas as pd

    root = Path(results_dir)
    if suite is not None:
        suites = [suite]
    elif root.is_dir():
        suites = sorted(p.name for p in root.iterdir() if (p / "records").is_dir())
    else:
        suites = []
    from bench.reports import records_frame
    from bench.suite_report import reported_records

    frames = []
    for name in suites:
        recs = records.load_records(root, name)
        used, older = reported_records(recs)
        kept = [r for r in recs if include_stale or r.id in used]
        if kept:
            table = records_frame(kept, flat=True)
            frames.append(table.assign(stale=[r.id not in used or r.id in older for r in kept]))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    for column in frame.columns:  # metric columns numeric where every value is a number or missing
        if frame[column].map(lambda v: v is None or isinstance(v, int | float)).all():
            frame[column] = pd.to_numeric(frame[column])
    return frame
