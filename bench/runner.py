"""Run a suite: for each RunSpec, skip it if its record is done, else run it and write its record.

What one run does is its task's business (:mod:`bench.tasks`: a classification run builds the
data module and model, trains with model selection, evaluates and times a throughput phase);
this module orchestrates: resume, claims, copies of identical computations, logs, records. Anything a run raises (an exception in the model, a
NaN loss, CUDA out-of-memory) becomes a record with ``status="failed"`` and the suite goes on.
Only problems that no other run could survive stop the suite: missing or malformed data
(:data:`DATA_ERRORS`) and interrupts (Ctrl-C, ``SystemExit``).

Where the runs execute is an executor's business (:mod:`bench.executors`: in this process, in
worker processes, or as submitit jobs); records are always written here, by :func:`run_suite`
in the parent process, so parallel runs never write the same file. Under a multi-process
Lightning strategy (DDP: ``--devices``/``--num-nodes``) every rank executes the runs, and only
global rank 0 writes records: its metrics, history and throughput are rank 0's.

Runs are claimed before they start (:mod:`bench.claims`): two ``bench run`` on one results
directory (two terminals, a SLURM array) train each run once; one skips what the other is
running, waits for its record (progress status ``claimed``) and takes over a run whose process
stopped.

Specs that compute the same run (:func:`computation_key`: e.g. a model that declares
``time_scale_invariant`` under conditions that differ only in the clock's scale) run once; the
others get a copy of its record that names it in ``reused_from``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
import traceback
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch

from bench import records, tasks
from bench.claims import Claims, describe
from bench.data import DataFormatError, DataNotFoundError
from bench.environment import collect_environment, kernels_run, run_threads, torch_threads
from bench.models import get_model_entry
from bench.progress import SuiteProgress
from bench.records import RunRecord, RunSpec
from bench.settings import TrainSettings
from bench.tasks import RunContext, Task, get_task, make_data_module

__all__ = ["RunContext", "SuiteResult", "execute", "run_suite"]

# Loggers whose output goes to the run's log file instead of the console while a run is going.
_RUN_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "py.warnings", "bench.run", "hippo.scan")


class DataUnavailableError(Exception):
    """Data is missing or malformed: no run of the suite can go on. The message is one line."""


# The data modules' "the data is not there / not readable" exceptions: fatal for a suite.
DATA_ERRORS = (DataNotFoundError, DataFormatError)


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` or ``auto`` (CUDA when available) -> a torch.device; ValueError if unusable."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch.cuda.is_available() is False")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; valid: cpu, cuda, auto")
    return torch.device(name)


def global_rank() -> int:
    """This process's global rank under a multi-process Lightning strategy; 0 when alone.

    Lightning sets it from the launcher's environment (``RANK``, ``LOCAL_RANK``, SLURM) at import
    and again when the strategy starts, the same value ``trainer.is_global_zero`` reads.
    """
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0) or 0)


def with_trainer_options(
    specs: Sequence[RunSpec], devices: int = 1, num_nodes: int = 1, strategy: str = "auto",
    accelerator: str = "cpu",
) -> list[RunSpec]:
    """Specs whose training runs use ``accelerator`` (a device type) on ``devices`` x ``num_nodes``.

    The options go into ``spec.train`` (so into the run id) only when they differ from one CPU
    with the automatic strategy: another accelerator changes the numbers (and the timings), and
    several devices change the effective batch size, so a CPU record is never taken for a CUDA
    run on resume, while single-CPU specs keep their ids (and their history). Function
    approximation runs on the CPU whatever the device, so its specs are left as they are.
    """
    if devices < 1 or num_nodes < 1:
        raise ValueError(f"devices and num_nodes must be >= 1, got {devices} and {num_nodes}")
    trainer = {"devices": devices, "num_nodes": num_nodes, "strategy": strategy}
    if (devices, num_nodes, strategy) == (1, 1, "auto"):
        trainer = {}
    device = {} if accelerator == "cpu" else {"accelerator": accelerator}

    def extra(task: Task) -> dict[str, Any]:
        return {**(trainer if task.trains else {}), **(device if task.on_device else {})}

    return [
        dataclasses.replace(s, train={**s.train, **extra(get_task(s.task))}) if extra(get_task(s.task)) else s
        for s in specs
    ]




def code_version(spec: RunSpec) -> str:
    """The version that, with the spec, names the run (:func:`bench.tasks.code_version`)."""
    return tasks.code_version(spec.task, spec.model)


# Data settings that only rescale the clock (bench.data.uea): a model whose logits do not depend
# on a uniform time scale computes the same run whatever their values.
CLOCK_SCALE_KEYS = ("train_time_scale", "eval_time_scale")


def _time_scale_invariant(spec: RunSpec) -> bool:
    try:
        return get_model_entry(spec.model).time_scale_invariant()
    except Exception:
        return False  # not a registered model (funcapprox measures) or one that does not import


def computation_key(spec: RunSpec) -> str:
    """Equal for specs that compute the same run: the run id of the spec without its
    ``condition`` (a table label) and, for a model that declares ``time_scale_invariant``, without
    the clock scales. The LSTM's two conditions of the ``timestamps`` suite have one key."""
    data = spec.data
    if _time_scale_invariant(spec):
        data = {k: v for k, v in data.items() if k not in CLOCK_SCALE_KEYS}
    return records.run_id(dataclasses.replace(spec, condition="", data=data), _version(spec))


def reused_record(spec: RunSpec, source: RunRecord) -> RunRecord:
    """``spec``'s record as a copy of ``source``, an ``ok`` run with the same computation key:
    its results under ``spec``'s own id, ``reused_from`` naming the run that computed them, and
    no training time of its own (a report summing time counts that run once)."""
    record = RunRecord.from_dict(source.to_dict())
    record.id = records.run_id(spec, _version(spec))
    record.spec = spec
    record.reused_from = source.reused_from or source.id
    record.train_seconds = 0.0
    record.started_at = record.finished_at = _now()
    for key in CLOCK_SCALE_KEYS:  # the data protocol this spec asked for, not the source's
        if key in record.data_protocol:
            record.data_protocol[key] = spec.data.get(key, 1.0)
    return record


def _reusable(specs: Sequence[RunSpec], results_dir: Path) -> dict[str, RunRecord]:
    """Computation key -> a current ``ok`` record in the suites of ``specs`` (not one left by an
    older code or harness version, whose id no longer matches its spec)."""
    found: dict[str, RunRecord] = {}
    for suite in dict.fromkeys(s.suite for s in specs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", records.BenchWarning)  # unreadable files: rerun anyway
            loaded = records.load_records(results_dir, suite)
        for record in loaded:
            if record.status == "ok" and record.id == records.run_id(record.spec, _version(record.spec)):
                found.setdefault(computation_key(record.spec), record)
    return found


def check_data(specs: Sequence[RunSpec], data_dir: str | Path | None) -> None:
    """Fail fast, before any run, if a dataset the suite needs is not in ``data_dir``."""
    seen: set[str] = set()
    for spec in specs:
        if spec.dataset is None or spec.dataset in seen:
            continue
        seen.add(spec.dataset)
        dm = make_data_module(spec, data_dir, {})
        try:
            if hasattr(dm, "prepare_data"):
                dm.prepare_data()
            dm.setup("fit")
        except DATA_ERRORS as e:
            raise DataUnavailableError(" ".join(str(e).split())) from e


@contextmanager
def run_log(path: Path) -> Iterator[logging.Logger]:
    """Send Lightning's messages and Python warnings to ``path`` (not the console) for one run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    saved = {}
    for name in _RUN_LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = (logger.handlers[:], logger.propagate, logger.level)
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(logging.INFO)
    logging.captureWarnings(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            yield logging.getLogger("bench.run")
    finally:
        logging.captureWarnings(False)
        for name, (handlers, propagate, level) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers, logger.propagate = handlers, propagate
            logger.setLevel(level)
        handler.close()


def _version(spec: RunSpec) -> str:
    """:func:`code_version`, or ``unavailable: <error>`` when the model cannot even be imported."""
    try:
        return code_version(spec)
    except Exception as e:  # a failed run, named as such
        return f"unavailable: {type(e).__name__}"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _execute_logged(spec: RunSpec, ctx: RunContext, record: RunRecord, version: str) -> None:
    """The run itself, logged to its own file; fills ``record`` (ok or failed) in place."""
    log_file = records.log_path(ctx.results_dir, spec.suite, record.id)
    rank = global_rank()
    if rank:
        log_file = log_file.with_name(f"{record.id}.rank{rank}.log")
    with run_log(log_file) as log:
        log.info("run %s: %s", record.id, records.canonical_json(spec.to_dict()))
        try:
            if version.startswith("unavailable"):
                code_version(spec)  # raise the import error again, inside the handler
            L.seed_everything(spec.seed, workers=True, verbose=False)
            for key, value in get_task(spec.task).run(spec, ctx, record.id, log).items():
                setattr(record, key, value)
            record.status = "ok"
        except DATA_ERRORS as e:
            raise DataUnavailableError(" ".join(str(e).split())) from e
        except Exception as e:  # includes torch.OutOfMemoryError and NonFiniteLossError
            record.status = "failed"
            record.error = f"{type(e).__name__}: {e}"
            record.traceback = traceback.format_exc()
            log.error("run failed\n%s", record.traceback)
            if ctx.device.type == "cuda":
                torch.cuda.empty_cache()  # let the next run start from a clean allocator after OOM


def execute(spec: RunSpec, ctx: RunContext) -> RunRecord:
    """Run ``spec`` and return its record (ok or failed) without writing it. Data errors propagate.

    Safe in a worker process: it writes only this run's log and checkpoint (named by its id;
    ranks other than 0 log to ``<id>.rank<N>.log``).
    """
    version = _version(spec)
    rid = records.run_id(spec, version)
    record = RunRecord(id=rid, spec=spec, code_version=version, started_at=_now())
    # Gradients that decay through long recurrences reach subnormal floats, which x86 CPUs
    # compute 10-100x slower: an LSTM training step at 182 steps took 3.3 s instead of 0.5 s
    # (identical losses). Flushing them to zero costs nothing measurable under Adam (eps 1e-8).
    # The mode is per thread (x86 MXCSR): it covers the calling thread and threads created after
    # it, such as an intra-op pool first used during the run, but not a pool that already exists
    # (measured: with 2 threads and a live pool, half of an elementwise op stays subnormal). With
    # one thread per run (the executors' CPU default) that is all of the compute. Set it back to
    # torch's default (off) afterwards, so the calling thread computes as before once it is done.
    flushed = torch.set_flush_denormal(True)
    record.environment = {**collect_environment(ctx.device), "flush_denormal": flushed}
    try:
        with kernels_run() as kernels:
            _execute_logged(spec, ctx, record, version)
    finally:
        if flushed:
            torch.set_flush_denormal(False)
    if kernels:  # which selective scan ran (compiled CPU, mamba_ssm on CUDA, torch): hippo.scan
        record.environment["kernels"] = kernels
    record.finished_at = _now()
    return record


def failed_record(spec: RunSpec, error: str, detail: str | None = None) -> RunRecord:
    """A failed record for a run whose worker died before returning one (killed, lost job)."""
    version = _version(spec)
    return RunRecord(id=records.run_id(spec, version), spec=spec, code_version=version, status="failed",
                     error=error, traceback=detail, finished_at=_now())  # fmt: skip


def finished(spec: RunSpec, results_dir: str | Path) -> RunRecord | None:
    """The spec's finished (``ok``) record in ``results_dir``, or None: it must run."""
    try:
        return records.finished_record(results_dir, spec.suite, records.run_id(spec, code_version(spec)))
    except Exception:
        return None  # cannot name it (model does not import): run it and record why


class LocalExecutor:
    """One run after the other in this process (the default executor), with per-epoch progress.

    ``threads``: torch threads for the runs (None: one on CPU, CUDA runs left as they are;
    :func:`bench.environment.run_threads`), set while they run and restored afterwards. The
    other executors (worker processes, submitit jobs) are in :mod:`bench.executors`.
    """

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    def describe(self) -> dict[str, Any]:
        return {"kind": "local"}

    def run(self, specs: Sequence[RunSpec], ctx: RunContext) -> Iterator[tuple[int, RunRecord]]:
        with torch_threads(run_threads(self.threads, ctx.device)):
            for i, spec in enumerate(specs):
                if not ctx.start(spec):
                    continue
                if ctx.progress is not None:
                    ctx.progress.run_started(spec, spec.train.get("epochs"))
                yield i, execute(spec, ctx)


@dataclass
class SuiteResult:
    """A suite's records (resumed and new, in spec order), how many were resumed, and what the
    API filled in after the run: the executor, the report's files (or why there is none)."""

    records: list[RunRecord]
    skipped: int
    reused: int = 0  # runs that copied the record of another with the same computation
    executor: dict[str, Any] = dataclasses.field(default_factory=dict)
    report_paths: list[Path] = dataclasses.field(default_factory=list)
    report_note: str | None = None
    skipped_ids: set[str] = dataclasses.field(default_factory=set)  # records that existed already

    @property
    def failed(self) -> list[RunRecord]:
        return [r for r in self.records if r.status != "ok"]


def run_suite(
    specs: Sequence[RunSpec],
    results_dir: str | Path,
    *,
    data_dir: str | Path | None = None,
    device: torch.device | str = "cpu",
    resume: bool = True,
    interactive: bool | None = None,
    title: str = "suite",
    executor: Any = None,
    logger: str | None = None,
    claim: bool = True,
) -> SuiteResult:
    """Run every spec; with ``resume``, specs whose record finished ``ok`` are skipped, and so
    are specs with the same :func:`computation_key` as a finished run (they copy its record).
    Within one call, specs with the same key run once: the first runs, the others copy it.

    ``executor`` (:class:`LocalExecutor`, the default, or one of :mod:`bench.executors`)
    runs the remaining specs and hands back their records; this function writes each one as it
    arrives (atomically, global rank 0 only), so an interrupted suite resumes the same way
    whatever executed it. Records come back in spec order.

    With ``claim`` (the default), each run is claimed before it starts (:mod:`bench.claims`):
    runs claimed by another live process are left to it, and this call waits for their records
    (progress status ``claimed``), running any whose claimant stops without one.
    """
    executor = executor if executor is not None else LocalExecutor()
    device = torch.device(device)
    for spec in specs:  # bad settings fail before any run, with one line naming the key
        if get_task(spec.task).settings:
            TrainSettings.from_dict(spec.train)
    for spec in specs:  # the id says which accelerator the record belongs to (with_trainer_options)
        wanted = spec.train.get("accelerator", "cpu")
        if get_task(spec.task).on_device and wanted != device.type:
            raise ValueError(f"run {spec.label()} was built for accelerator {wanted!r} but the "
                             f"device is {device.type!r}; build the specs with "
                             f"with_trainer_options(..., accelerator={device.type!r})")
    results_dir = Path(results_dir)
    rank = global_rank()
    found: list[RunRecord | None] = [None] * len(specs)
    skipped = 0
    skipped_ids: set[str] = set()
    with SuiteProgress(len(specs), title, interactive if rank == 0 else False, tasks.headline) as progress:
        todo = []
        for i, spec in enumerate(specs):
            done = finished(spec, results_dir) if resume else None
            if done is not None:
                skipped += 1
                skipped_ids.add(done.id)
                found[i] = done
                progress.run_finished(done, skipped=True, seconds=0.0)
            elif rank == 0 or get_task(spec.task).trains:  # other ranks join training runs only
                todo.append(i)
        reusable = _reusable([specs[i] for i in todo], results_dir) if resume and todo else {}
        followers: dict[str, list[int]] = {}  # computation key -> specs that copy its run
        reused = 0

        def settle(i: int, source: RunRecord) -> None:
            """Spec ``i``'s record from ``source``, the run with its computation key: a copy if
            that finished ok, else a failed record (the next resume runs it, then copies it)."""
            nonlocal reused
            if source.status == "ok":
                record, reused = reused_record(specs[i], source), reused + 1
            else:
                record = failed_record(specs[i], f"not run: the run it would copy "
                                                 f"({source.spec.label()}) did not finish ok")
                record.reused_from = source.id
            if rank == 0:
                records.save_record(results_dir, record)
            found[i] = record
            progress.run_finished(record, skipped=True, seconds=0.0, status="same" if record.status == "ok" else "failed")

        runs = []
        for i in todo:
            key = computation_key(specs[i])
            if key in reusable:
                settle(i, reusable[key])
            elif key in followers:
                followers[key].append(i)
            else:
                followers[key] = []
                runs.append(i)
        progress.copies_to_come = sum(map(len, followers.values()))
        # Claims (bench.claims) keep concurrent `bench run`s on one directory from training a run
        # twice. Only for single-process runs: the ranks of a local DDP run execute every run
        # and must not skip different ones.
        use_claims = claim and rank == 0 and not (isinstance(executor, LocalExecutor) and any(map(_multi_process, specs)))
        suite_started = _now()
        pace = {"start": time.perf_counter()}

        def settle_followers(i: int, record: RunRecord) -> None:
            for k in followers[computation_key(specs[i])]:  # as soon as their run is in
                progress.copies_to_come -= 1
                settle(k, record)

        with Claims(results_dir) if use_claims else nullcontext() as claims:

            def take(spec: RunSpec) -> bool:
                rid = records.run_id(spec, _version(spec))
                if claims.acquire(spec.suite, rid) is not None:
                    return False  # another process runs it
                if _done_elsewhere(spec, rid, results_dir, resume, suite_started) is not None:
                    claims.release(spec.suite, rid)  # finished by another while we got here
                    return False
                return True

            ctx = RunContext(results_dir, data_dir, device, progress, logger, take if use_claims else None)

            def run_batch(indices: list[int]) -> set[int]:
                """Run ``indices`` and write their records; the ones claimed elsewhere are returned."""
                left = set(indices)
                for j, record in executor.run([specs[i] for i in indices], ctx):
                    i = indices[j]
                    left.discard(i)
                    record.environment = {**record.environment, "executor": executor.describe()}
                    if rank == 0:
                        records.save_record(results_dir, record)
                    if use_claims:
                        claims.release(specs[i].suite, record.id)
                    found[i] = record
                    now = time.perf_counter()  # time since the previous record: the suite's pace
                    progress.run_finished(record, skipped=False, seconds=now - pace["start"])
                    pace["start"] = now
                    settle_followers(i, record)
                return left

            waiting = run_batch(runs)
            if waiting:
                holders = {describe(h) for i in waiting if (h := claims.holder(specs[i].suite, _rid(specs[i])))}
                by = f" ({', '.join(sorted(holders))})" if holders else ""
                progress.note(f"{len(waiting)} run(s) claimed by another process{by}: waiting for their records; "
                              "a run whose process stops is taken over here")  # fmt: skip
            while waiting:
                time.sleep(claims.poll_s)
                ready = []
                for i in sorted(waiting):
                    rid = _rid(specs[i])
                    if (record := _done_elsewhere(specs[i], rid, results_dir, resume, suite_started)) is not None:
                        waiting.discard(i)
                        found[i] = record
                        progress.run_finished(record, skipped=True, seconds=0.0, status="claimed")
                        settle_followers(i, record)
                    elif claims.holder(specs[i].suite, rid) is None:  # released or stale: ours to run
                        ready.append(i)
                if ready:
                    waiting = (waiting - set(ready)) | run_batch(ready)
    return SuiteResult([r for r in found if r is not None], skipped, reused, skipped_ids=skipped_ids)


def _rid(spec: RunSpec) -> str:
    return records.run_id(spec, _version(spec))


def _multi_process(spec: RunSpec) -> bool:
    """A run trained by several processes (DDP over devices or nodes)."""
    return int(spec.train.get("devices", 1)) * int(spec.train.get("num_nodes", 1)) > 1


def _done_elsewhere(spec: RunSpec, rid: str, results_dir: Path, resume: bool, since: str) -> RunRecord | None:
    """The record another process wrote for ``rid``: one that finished ``ok`` (with ``resume``),
    or any finished since this suite started (``since``: the other run's result, ok or failed)."""
    try:
        record = records.load_record(records.record_path(results_dir, spec.suite, rid))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if (resume and record.status == "ok") or (record.finished_at or "") >= since:
        return record
    return None
