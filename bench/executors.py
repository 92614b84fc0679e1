"""Executors: where the runs of a suite execute. The records are written by the caller.

The runs of a suite are independent, so they can run side by side. An executor takes the specs
that still have to run and yields ``(index, RunRecord)`` as runs finish, asking
``ctx.start(spec)`` right before it starts each one (the run's claim, :mod:`bench.claims`; a spec
it refuses is skipped and yields nothing); :func:`bench.runner.run_suite`
writes each record (atomically, in the parent process, the only writer), so parallel runs never
write the same file and an interrupted suite resumes the same way whatever ran it.

- :class:`bench.runner.LocalExecutor` (default): one run after the other in this process, with the live
  per-epoch progress.
- :class:`ProcessesExecutor`: worker processes on this machine (``concurrent.futures`` with the
  ``spawn`` start method: torch is not fork-safe). Each worker is its own one-process pool
  running one spec at a time and returning the record as a dict, so a worker that dies (killed,
  out of memory, segfault) is known to have been running exactly that spec: it becomes a failed
  record and a fresh worker takes the slot. On CPU each worker runs one torch thread (or
  ``threads``); with CUDA the CPU threads are split between the workers and each worker sees
  one GPU (``CUDA_VISIBLE_DEVICES``, round-robin over the visible ones).
- :class:`SubmititExecutor`: one job per run through ``submitit``: SLURM (``cluster="slurm"``),
  or local subprocesses (``cluster="local"``, for development and tests). A job that fails
  without a record (timeout, preemption, node failure) becomes a failed record. Its torch
  threads are the job's (the cluster's allocation) unless ``threads`` is given.

Timings (throughput, ``steps_per_s``) of runs that share a machine are lower than those of runs
alone: compare records made with the same executor and worker count (records name them in
``environment["executor"]``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.environment import DEFAULT_CPU_THREADS, run_threads
from bench.records import RunRecord, RunSpec
from bench.runner import DataUnavailableError, LocalExecutor, RunContext, execute, failed_record

EXECUTORS = ("local", "processes", "submitit")
CLUSTERS = ("auto", "slurm", "local", "debug")

WORKER_DIED = "WorkerDied: the worker process died while running this spec (killed, out of memory or crashed)"

Setup = Callable[[], None]
Finished = Iterator[tuple[int, RunRecord]]


@dataclass(frozen=True)
class WorkerSettings:
    """What a worker needs to run a spec (picklable): paths, device, the caller's outside models
    (:func:`bench.plugins.plugin_state`: ``--include`` files and registered classes) and an
    optional setup hook.

    ``setup`` (a module-level function, pickled by reference) runs once in every worker before
    its first run: tests use it to register fake models and data modules there.
    """

    results_dir: str
    data_dir: str | None
    device: str
    setup: Setup | None = None
    logger: str | None = None
    plugins: dict[str, Any] | None = None
    threads: int | None = None  # torch threads of a submitit job (None: as the job starts)

    @classmethod
    def of(cls, ctx: RunContext, setup: Setup | None, threads: int | None = None) -> WorkerSettings:
        from bench.plugins import plugin_state

        data_dir = None if ctx.data_dir is None else str(ctx.data_dir)
        return cls(str(ctx.results_dir), data_dir, ctx.device.type, setup, ctx.logger, plugin_state(), threads)

    def context(self) -> RunContext:
        data_dir = None if self.data_dir is None else Path(self.data_dir)
        return RunContext(Path(self.results_dir), data_dir, torch.device(self.device), logger=self.logger)


def run_spec(spec: dict[str, Any], settings: WorkerSettings) -> dict[str, Any]:
    """Run one spec in a worker: ``{"record": <RunRecord dict>}``, or ``{"data_error": message}``.

    Writes nothing but the run's log and checkpoint; the record goes back to the parent.
    """
    from bench.plugins import restore

    restore(settings.plugins)  # what the caller included or registered (once per process)
    try:
        return {"record": execute(RunSpec.from_dict(spec), settings.context()).to_dict()}
    except DataUnavailableError as e:
        return {"data_error": str(e)}


def _unpack(spec: RunSpec, result: dict[str, Any]) -> RunRecord:
    if "data_error" in result:
        raise DataUnavailableError(result["data_error"])
    record = RunRecord.from_dict(result["record"])
    return record if record.spec == spec else failed_record(spec, "worker returned another run's record")


# --- worker processes on this machine -----------------------------------------------------------


def default_workers(device: str) -> int:
    """One worker per visible GPU with CUDA, else one per two CPU cores."""
    if device == "cuda" and torch.cuda.is_available():
        return max(1, torch.cuda.device_count())
    return max(1, (os.cpu_count() or 1) // 2)


def _csv_env(name: str) -> list[str]:
    return [v.strip() for v in os.environ.get(name, "").split(",") if v.strip()]


def init_worker(threads: int, cuda_device: int | None, setup: Setup | None) -> None:
    """Worker initializer: its share of CPU threads, its GPU, then the setup hook."""
    if cuda_device is not None:  # before anything initialises CUDA in this process
        # index into the parent's visible devices (e.g. "2,3" under SLURM), not physical ids
        visible = _csv_env("CUDA_VISIBLE_DEVICES")
        os.environ["CUDA_VISIBLE_DEVICES"] = visible[cuda_device % len(visible)] if visible else str(cuda_device)
    torch.set_num_threads(threads)
    if setup is not None:
        setup()


@dataclass
class ProcessesExecutor:
    """``workers`` spawned processes on this machine, one run each at a time (see the module doc);
    ``threads``: torch threads per worker (None: one on CPU, the CPU count split between the
    workers with CUDA)."""

    workers: int | None = None
    setup: Setup | None = None
    threads: int | None = None
    _started: int | None = field(default=None, init=False, repr=False)  # workers of the last run()

    def describe(self) -> dict[str, Any]:
        return {"kind": "processes", "workers": self._started or self.workers}

    def _slot(self, index: int, threads: int, gpus: int) -> ProcessPoolExecutor:
        import multiprocessing

        cuda_device = index % gpus if gpus else None
        return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=init_worker,
                                   initargs=(threads, cuda_device, self.setup))  # fmt: skip

    def run(self, specs: Sequence[RunSpec], ctx: RunContext) -> Finished:
        if not specs:
            return
        settings = WorkerSettings.of(ctx, self.setup)
        workers = min(self.workers or default_workers(settings.device), len(specs))
        self._started = workers
        gpus = torch.cuda.device_count() if settings.device == "cuda" else 0
        threads = run_threads(self.threads, settings.device) or max(1, (os.cpu_count() or 1) // workers)
        slots: dict[int, ProcessPoolExecutor] = {}  # started lazily; a dead worker's slot is replaced
        queue = list(enumerate(specs))
        running: dict[Future, tuple[int, int]] = {}  # future -> (slot, spec index)
        try:
            while queue or running:
                busy = {slot for slot, _ in running.values()}
                for k in range(workers):
                    while k not in busy and queue:
                        i, spec = queue.pop(0)
                        if not ctx.start(spec):  # claimed by another process: not ours to run
                            continue
                        if k not in slots:
                            slots[k] = self._slot(k, threads, gpus)
                        running[slots[k].submit(run_spec, spec.to_dict(), settings)] = (k, i)
                        busy.add(k)
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    k, i = running.pop(future)
                    try:
                        record = _unpack(specs[i], future.result())
                    except BrokenProcessPool as e:  # this slot's only process died running spec i
                        record = failed_record(specs[i], WORKER_DIED, repr(e))
                        slots.pop(k).shutdown(wait=False)
                    yield i, record
        finally:  # normal end, a data error or Ctrl-C: stop the workers; queued runs never start
            for pool in slots.values():
                pool.shutdown(wait=False, cancel_futures=True)


# --- submitit: SLURM or local subprocesses ------------------------------------------------------


def run_spec_job(spec: dict[str, Any], settings: WorkerSettings) -> dict[str, Any]:
    """A submitit job: its threads, the setup hook, then :func:`run_spec` (every task of a DDP
    job runs it)."""
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    if settings.setup is not None:
        settings.setup()
    return run_spec(spec, settings)


@dataclass
class SubmititExecutor:
    """One submitit job per run; at most ``workers`` jobs queued or running at a time (None: all).

    ``cluster``: ``slurm``, ``local`` (jobs as local subprocesses), ``debug`` (in this process)
    or ``auto`` (submitit's choice: SLURM when ``sbatch`` is there). ``folder`` holds submitit's
    pickles and job logs. ``timeout_min``, ``partition`` and ``gpus_per_node`` are the SLURM
    request; with ``devices``/``num_nodes`` > 1 a job has one task per device on each node, and
    Lightning's DDP picks the ranks up from SLURM (the record is task 0's, i.e. rank 0's).
    """

    folder: Path
    cluster: str = "auto"
    workers: int | None = None
    timeout_min: int = 60
    partition: str | None = None
    gpus_per_node: int | None = None
    devices: int = 1
    num_nodes: int = 1
    setup: Setup | None = None
    poll_s: float | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    threads: int | None = None  # torch threads per job (None: left as the job starts them)

    def describe(self) -> dict[str, Any]:
        return {"kind": "submitit", "cluster": self.cluster, "workers": self.workers}

    def make(self, device: str) -> Any:
        """The ``submitit.AutoExecutor`` with this executor's request."""
        import submitit

        executor = submitit.AutoExecutor(folder=self.folder, cluster=None if self.cluster == "auto" else self.cluster)
        self.cluster = executor.cluster
        gpus = self.gpus_per_node if self.gpus_per_node is not None else (self.devices if device == "cuda" else 0)
        params: dict[str, Any] = dict(timeout_min=self.timeout_min, nodes=self.num_nodes,
                                      tasks_per_node=self.devices, gpus_per_node=gpus, name="hippo-bench")  # fmt: skip
        if self.partition is not None:
            params["slurm_partition"] = self.partition
        params.update(self.parameters)
        executor.update_parameters(**params)
        return executor

    def run(self, specs: Sequence[RunSpec], ctx: RunContext) -> Finished:
        if not specs:
            return
        settings = WorkerSettings.of(ctx, self.setup, self.threads)
        executor = self.make(settings.device)
        poll = self.poll_s if self.poll_s is not None else (15.0 if self.cluster == "slurm" else 0.5)
        limit = self.workers or len(specs)
        queue = list(enumerate(specs))
        running: dict[Any, int] = {}  # submitit job -> spec index
        try:
            while queue or running:
                while queue and len(running) < limit:
                    i, spec = queue.pop(0)
                    if ctx.start(spec):  # else claimed by another process: not ours to run
                        running[executor.submit(run_spec_job, spec.to_dict(), settings)] = i
                if not running:
                    break
                finished = [job for job in running if job.done()]
                if not finished:
                    time.sleep(poll)
                    continue
                for job in finished:
                    i = running.pop(job)
                    yield i, self._record(job, specs[i])
        finally:  # a data error or Ctrl-C: cancel what is still queued or running
            for job in running:
                job.cancel(check=False)

    @staticmethod
    def _record(job: Any, spec: RunSpec) -> RunRecord:
        try:
            result = job.result()
        except Exception as e:  # submitit's UncompletedJobError / FailedJobError: no record came back
            first = (str(e).strip().splitlines() or [""])[0][:300]
            return failed_record(spec, f"JobFailed: submitit job {job.job_id} ended without a record: {first}",
                                 f"{e}\n(job logs: {job.paths.stdout}, {job.paths.stderr})")  # fmt: skip
        return _unpack(spec, result)


def threads_note(executor: Any, device: torch.device | str, runs: int) -> str | None:
    """The one line a suite prints about its CPU threads and parallel runs (None for submitit
    jobs, whose threads are the cluster's business)."""
    device = torch.device(device)
    if isinstance(executor, LocalExecutor):
        threads, where = executor.threads, "1 run at a time"
        change = "--threads N, or --executor processes --workers N, to change"
    elif isinstance(executor, ProcessesExecutor):
        threads = executor.threads
        workers = min(executor.workers or default_workers(device.type), max(runs, 1))
        where = f"{workers} run(s) at a time in worker processes"
        change = "--threads N, --workers N to change"
    else:
        return None
    chosen = run_threads(threads, device)
    if chosen is None:  # CUDA, not asked
        return f"{device.type.upper()}: torch's CPU threads left as they are, {where} (--threads N to set them)"
    default = " (the default)" if threads is None and chosen == DEFAULT_CPU_THREADS else ""
    return f"{device.type.upper()}: {chosen} torch thread(s) per run{default}, {where} ({change})"


def make_executor(
    kind: str,
    *,
    workers: int | None = None,
    threads: int | None = None,
    results_dir: str | Path = "results",
    cluster: str = "auto",
    slurm_partition: str | None = None,
    slurm_time: int = 60,
    slurm_gpus_per_node: int | None = None,
    devices: int = 1,
    num_nodes: int = 1,
    setup: Setup | None = None,
) -> LocalExecutor | ProcessesExecutor | SubmititExecutor:
    """The executor named ``kind`` (``local``, ``processes``, ``submitit``); ValueError on bad options."""
    if kind not in EXECUTORS:
        raise ValueError(f"unknown executor {kind!r}; valid: {', '.join(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    run_threads(threads, "cpu")  # validates: one line naming --threads
    if cluster not in CLUSTERS:
        raise ValueError(f"unknown submitit cluster {cluster!r}; valid: {', '.join(CLUSTERS)}")
    if kind == "local":
        return LocalExecutor(threads)
    if kind == "processes":
        if devices * num_nodes > 1:
            raise ValueError("--devices/--num-nodes > 1 need --executor local or submitit "
                             "(a processes worker runs one run on one device)")  # fmt: skip
        return ProcessesExecutor(workers, setup, threads)
    return SubmititExecutor(Path(results_dir) / ".submitit", cluster, workers, slurm_time, slurm_partition,
                            slurm_gpus_per_node, devices, num_nodes, setup, threads=threads)  # fmt: skip
