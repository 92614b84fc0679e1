"""Run a suite: for each RunSpec, skip it if its record is done, else run it and write its record.

One run = build the data module and model, train with model selection, evaluate, time the
throughput phase, and write the record. Anything a run raises (an exception in the model, a
NaN loss, CUDA out-of-memory) becomes a record with ``status="failed"`` and the suite goes on.
Only problems that no other run could survive stop the suite: missing or malformed data
(:data:`DATA_ERRORS`) and interrupts (Ctrl-C, ``SystemExit``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import logging
import time
import traceback
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch

from bench import records
from bench.data import DataFormatError, DataNotFoundError, make_datamodule
from bench.environment import collect_environment
from bench.models import create_model, get_model_entry
from bench.progress import EpochProgress, SuiteProgress
from bench.records import RunRecord, RunSpec
from bench.throughput import measure_throughput, peak_memory, reset_peak_memory
from bench.training import evaluate, fit

# Loggers whose output goes to the run's log file instead of the console while a run is going.
_RUN_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "py.warnings", "bench.run")


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


def _load(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def code_version(spec: RunSpec) -> str:
    """The version that, with the spec, names the run: the model class's ``code_version``."""
    if spec.task == "funcapprox":
        hippo = importlib.import_module("hippo")
        funcapprox = importlib.import_module("hippo.funcapprox")
        return str(getattr(funcapprox, "CODE_VERSION", getattr(hippo, "__version__", "0")))
    return str(get_model_entry(spec.model).load().code_version)


def make_data_module(spec: RunSpec, data_dir: str | Path | None, extras: Sequence[str]) -> Any:
    """The data module for ``spec`` with its protocol settings, batch size, seed and model extras.

    ``extras`` is passed only when the model asks for some (not every data module takes it).
    """
    kwargs = dict(spec.data, data_dir=data_dir, batch_size=spec.train["batch_size"], seed=spec.seed)
    if extras:
        kwargs["extras"] = tuple(extras)
    return make_datamodule(spec.dataset, **kwargs)


def check_data(specs: Sequence[RunSpec], data_dir: str | Path | None) -> None:
    """Fail fast, before any run, if a dataset the suite needs is not in ``data_dir``."""
    seen: set[str] = set()
    for spec in specs:
        if spec.dataset is None or spec.dataset in seen:
            continue
        seen.add(spec.dataset)
        dm = make_data_module(spec, data_dir, ())
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


def _classification(spec: RunSpec, ctx: RunContext, rid: str, log: logging.Logger) -> dict[str, Any]:
    model_cls = get_model_entry(spec.model).load()
    dm = make_data_module(spec, ctx.data_dir, getattr(model_cls, "batch_extras", ()))
    dm.setup("fit")
    dm.setup("test")
    model = create_model(spec.model, dm.num_inputs, dm.num_classes, **spec.model_args).to(ctx.device)
    out: dict[str, Any] = {
        "data_protocol": dm.describe() if hasattr(dm, "describe") else dict(spec.data),
        "model_config": dict(getattr(model, "config", {})),
        "num_parameters": sum(p.numel() for p in model.parameters()),
    }
    log.info("model %s: %d parameters, config %s", spec.model, out["num_parameters"], out["model_config"])
    train = spec.train
    reset_peak_memory(ctx.device)
    start = time.perf_counter()
    callbacks = [EpochProgress(ctx.progress, log)] if ctx.progress is not None else []
    module = fit(
        model, dm, epochs=train["epochs"], lr=train["lr"], device=ctx.device,
        best_weights_path=ctx.checkpoint_path(spec.suite, rid),
        limit_train_batches=train.get("limit_train_batches"),
        limit_eval_batches=train.get("limit_eval_batches"), callbacks=callbacks,
    )  # fmt: skip
    out["train_seconds"] = time.perf_counter() - start
    out["peak_memory_bytes"] = peak_memory(ctx.device)
    out["history"] = module.history
    metrics, curve = evaluate(
        model, dm, ctx.device, val_names=module.val_names, eval_rates=train.get("eval_rates", ()),
        limit_batches=train.get("limit_eval_batches"),
    )  # fmt: skip
    out["metrics"] = {
        **metrics,
        "best_epoch": module.best_epoch,
        "selected_on": module.val_names[0],
        "num_classes": dm.num_classes,
    }
    out["rate_curve"] = curve
    out["throughput"] = _throughput(model, dm, spec, ctx)
    return out


def _throughput(model: torch.nn.Module, dm: Any, spec: RunSpec, ctx: RunContext) -> dict[str, Any]:
    iters = spec.train.get("throughput_iters", 0)
    if not iters:
        return {}
    batch = next(iter(dm.train_dataloader()))
    return measure_throughput(
        model, batch, ctx.device, warmup=spec.train.get("throughput_warmup", 1), iters=iters,
        lr=spec.train.get("lr", 1e-3),
    )  # fmt: skip


def _throughput_only(spec: RunSpec, ctx: RunContext, rid: str, log: logging.Logger) -> dict[str, Any]:
    model_cls = get_model_entry(spec.model).load()
    dm = make_data_module(spec, ctx.data_dir, getattr(model_cls, "batch_extras", ()))
    dm.setup("fit")
    model = create_model(spec.model, dm.num_inputs, dm.num_classes, **spec.model_args)
    result = _throughput(model, dm, spec, ctx)
    return {
        "model_config": dict(getattr(model, "config", {})),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "data_protocol": dm.describe() if hasattr(dm, "describe") else dict(spec.data),
        "throughput": result,
        "peak_memory_bytes": result.get("peak_memory_bytes"),
        "metrics": {k: v for k, v in result.items() if k.endswith("_per_s")},
    }


def _funcapprox(spec: RunSpec, ctx: RunContext, rid: str, log: logging.Logger) -> dict[str, Any]:
    approximate_function = _load("hippo.funcapprox:approximate_function")
    result = approximate_function(spec.model, seed=spec.seed, dtype=torch.float64, **spec.model_args)
    metrics = dataclasses.asdict(result) if dataclasses.is_dataclass(result) else dict(result)
    metrics["mse_at"] = {str(k): v for k, v in (metrics.get("mse_at") or {}).items()}
    return {"metrics": metrics, "train_seconds": metrics.get("seconds")}


TASKS = {"classification": _classification, "throughput": _throughput_only, "funcapprox": _funcapprox}


@dataclass
class RunContext:
    """Where and how runs execute (not part of the spec: it does not change results)."""

    results_dir: Path
    data_dir: str | Path | None
    device: torch.device
    progress: SuiteProgress | None = None

    def checkpoint_path(self, suite: str, rid: str) -> Path:
        return records.suite_dir(self.results_dir, suite) / "checkpoints" / f"{rid}.pt"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def run_one(spec: RunSpec, ctx: RunContext) -> RunRecord:
    """Run ``spec``, write its record (ok or failed) and return it. Data errors propagate."""
    try:
        version = code_version(spec)
    except Exception as e:  # the model cannot even be imported: a failed run, named as such
        version = f"unavailable: {type(e).__name__}"
    rid = records.run_id(spec, version)
    record = RunRecord(id=rid, spec=spec, code_version=version, started_at=_now())
    record.environment = collect_environment(ctx.device)
    with run_log(records.log_path(ctx.results_dir, spec.suite, rid)) as log:
        log.info("run %s: %s", rid, records.canonical_json(spec.to_dict()))
        try:
            if version.startswith("unavailable"):
                code_version(spec)  # raise the import error again, inside the handler
            L.seed_everything(spec.seed, workers=True, verbose=False)
            for key, value in TASKS[spec.task](spec, ctx, rid, log).items():
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
    record.finished_at = _now()
    records.save_record(ctx.results_dir, record)
    return record


@dataclass
class SuiteResult:
    records: list[RunRecord]
    skipped: int

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
) -> SuiteResult:
    """Run every spec in order; with ``resume``, specs whose record finished ``ok`` are skipped."""
    device = torch.device(device)
    results = []
    skipped = 0
    with SuiteProgress(len(specs), title, interactive) as progress:
        ctx = RunContext(Path(results_dir), data_dir, device, progress)
        for spec in specs:
            start = time.perf_counter()
            done = None
            if resume:
                try:
                    done = records.finished_record(results_dir, spec.suite, records.run_id(spec, code_version(spec)))
                except Exception:
                    done = None  # cannot name it (model does not import): run it and record why
            if done is not None:
                skipped += 1
                results.append(done)
                progress.run_finished(done, skipped=True, seconds=0.0)
                continue
            progress.run_started(spec, spec.train.get("epochs"))
            record = run_one(spec, ctx)
            results.append(record)
            progress.run_finished(record, skipped=False, seconds=time.perf_counter() - start)
    return SuiteResult(results, skipped)
