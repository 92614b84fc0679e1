"""Run specs and run records: what a run is, what it produced, and how it is stored.

A :class:`RunSpec` says everything that decides a run's result. Its id hashes the spec with the
model's ``code_version`` and :data:`HARNESS_VERSION`, so rerunning a suite skips finished runs
while a changed model (or a changed harness protocol) is rerun. A :class:`RunRecord` is one JSON
file per run, written atomically (temporary file in the same folder, fsync, ``os.replace``), so
``kill -9`` at any moment leaves either the old file, the new file, or nothing -- never half a file.

Layout under the results directory: ``<suite>/records/<id>.json``, ``<suite>/logs/<id>.log``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import IO, Any

# Bump when the harness changes what a run measures (training loop, evaluation protocol), so old
# records are not reused for new numbers.
# 2: typed training settings (every field in the spec), model selection at both rates.
HARNESS_VERSION = "2"
SCHEMA_VERSION = 1


class BenchWarning(UserWarning):
    """Something the user can act on that does not stop the command (the CLI prints it as
    ``bench: warning: ...``, one line, without a source location)."""


@dataclass(frozen=True)
class RunSpec:
    """Everything that decides a run's outcome. Plain JSON-able values only.

    - ``task``: what is done: ``"classification"`` (train, select, evaluate), ``"funcapprox"``
      (online function approximation with ``hippo``) or ``"throughput"`` (timing only).
    - ``dataset``: the data module (a name for ``bench.data.make_datamodule``), or None.
    - ``condition``: the table column the run belongs to (``"100Hz->200Hz"``, ``"30% missing"``).
    - ``model``: a registered model name (for funcapprox: the measure, ``"legs"``).
    - ``data``: the data module's protocol settings (``train_hz``, ``eval_hz``, ``time``,
      ``missing_rate``, ``permute``, ...), passed to its constructor as keyword arguments.
    - ``train``: the training settings, :class:`bench.settings.TrainSettings` as a dict (every
      field, so a record states its effective settings; unknown keys are refused at run time).
    - ``model_args``: keyword overrides for ``create_model`` (``hidden_size``, ...), or for
      ``funcapprox`` the arguments of ``approximate_function`` (``N``, ``length``, ...).
    - ``provenance``: where the settings came from when that is not the model's reference
      (``{"settings": "no reference: family defaults"}``, ``{"overrides": {"lr": 0.003}}``, the
      user's ``--set``). Omitted from :meth:`to_dict` when empty, so older ids are unchanged.
    """

    suite: str
    task: str
    dataset: str | None
    condition: str
    model: str
    seed: int
    profile: str
    data: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    model_args: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not d["provenance"]:
            del d["provenance"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})

    def label(self) -> str:
        """Short human-readable name for progress lines and logs."""
        return f"{self.model} | {self.condition} | seed {self.seed}"


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: equal specs give equal bytes, hence equal ids."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def run_id(spec: RunSpec, code_version: str) -> str:
    """16 hex digits of sha256 over the spec, the model's code version and the harness version."""
    payload = canonical_json(
        {"spec": spec.to_dict(), "code_version": code_version, "harness": HARNESS_VERSION}
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass
class RunRecord:
    """What one run produced. ``status`` is ``"ok"`` or ``"failed"`` (then ``error`` says why).

    ``metrics`` holds the headline numbers (``test_acc`` at the evaluation rate, of the weights
    selected on validation at the training rate, ``best_epoch``; ``test_acc_eval_selected`` and
    ``best_epoch_eval_selected``, the same under the reference codes' selection at the
    evaluation rate; ``test_examples``, how many test examples it counts; ``val_acc_train_rate``,
    ``val_acc_eval_rate``; for funcapprox ``mse`` and ``steps_per_s``);
    ``rate_curve`` maps test rate (as a string, JSON keys are strings) to test accuracy;
    ``history`` is one dict per epoch; ``throughput`` is :func:`bench.throughput.measure_throughput`'s
    result; ``peak_memory_bytes`` the peak during training (CUDA: max allocated; CPU: None);
    ``reused_from`` the id of the run that computed these results when this spec computes the
    same thing (``bench.runner.computation_key``) and copied them, else None.
    """

    id: str
    spec: RunSpec
    code_version: str
    status: str = "running"
    error: str | None = None
    traceback: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    rate_curve: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    data_protocol: dict[str, Any] = field(default_factory=dict)
    model_config: dict[str, Any] = field(default_factory=dict)
    num_parameters: int | None = None
    train_seconds: float | None = None
    throughput: dict[str, Any] = field(default_factory=dict)
    peak_memory_bytes: int | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    started_at: str | None = None
    finished_at: str | None = None
    reused_from: str | None = None
    harness_version: str = HARNESS_VERSION
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["spec"] = self.spec.to_dict()
        return d

    def to_json(self) -> str:
        # NaN/inf are not JSON: store them as null so any JSON reader can parse a record.
        return json.dumps(_finite(self.to_dict()), indent=2, sort_keys=True, default=str)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunRecord:
        if d.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"record schema {d.get('schema_version')!r}; expected {SCHEMA_VERSION}")
        kwargs = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        kwargs["spec"] = RunSpec.from_dict(d["spec"])
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        return cls.from_dict(json.loads(text))


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def suite_dir(results_dir: str | Path, suite: str) -> Path:
    return Path(results_dir) / suite


def record_path(results_dir: str | Path, suite: str, rid: str) -> Path:
    return suite_dir(results_dir, suite) / "records" / f"{rid}.json"


def log_path(results_dir: str | Path, suite: str, rid: str) -> Path:
    return suite_dir(results_dir, suite) / "logs" / f"{rid}.log"


def write_atomic(path: Path, text: str | Callable[[IO[Any]], None], binary: bool = False) -> None:
    """Write ``text`` (or what ``text(file)`` writes, in binary with ``binary``) to ``path`` so
    that readers see the old file or the whole new one.

    The temporary file is hidden beside ``path`` (``.<name>.*.tmp``: ``os.replace`` is atomic
    only within one file system) and is fsynced before the rename, and the folder after it, so a
    crash or ``kill -9`` cannot leave a half-written or renamed-but-empty file. Records, reports
    and the data caches all write through here.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            if callable(text):
                text(f)
            else:
                f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_record(results_dir: str | Path, record: RunRecord) -> Path:
    path = record_path(results_dir, record.spec.suite, record.id)
    write_atomic(path, record.to_json())
    return path


def load_record(path: Path) -> RunRecord:
    return RunRecord.from_json(path.read_text())


def load_records(results_dir: str | Path, suite: str) -> list[RunRecord]:
    """Every readable record of ``suite``; leftover temporary files (``.*.tmp``) are ignored."""
    folder = suite_dir(results_dir, suite) / "records"
    loaded = []
    for p in sorted(folder.glob("[!.]*.json")):
        try:
            loaded.append(load_record(p))
        except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
            warnings.warn(f"skipping unreadable record {p}: {exc}", BenchWarning, stacklevel=2)
    return loaded


def finished_record(results_dir: str | Path, suite: str, rid: str) -> RunRecord | None:
    """The record with id ``rid`` if it exists and finished with status ``"ok"``, else None.

    A record that does not parse counts as absent (the run is redone), which is the safe
    reading even though atomic writes should never produce one.
    """
    path = record_path(results_dir, suite, rid)
    if not path.exists():
        return None
    try:
        record = load_record(path)
    except (ValueError, KeyError, TypeError):
        return None
    return record if record.status == "ok" else None


def error_line(record: RunRecord) -> str:
    """A failed run's error on one line ("" for a run that went well): a progress line's
    headline when there is no number to show."""
    return "" if record.status == "ok" else (record.error or "failed").splitlines()[0][:120]
