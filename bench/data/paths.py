"""Where data and processed caches live, and the error for data that is not there.

Data directory: the constructor's ``data_dir`` (the CLI's ``--data-dir``), else
``$BENCH_DATA_DIR``, else ``<per-user cache>/data`` (platformdirs). Processed caches:
``$BENCH_CACHE_DIR``, else ``<per-user cache>/processed``.

A data directory that was named (argument, flag or environment variable) must already exist
and be a folder: a mistyped path is refused with a :class:`DataDirError` instead of being
created and filled by a download. Only the per-user default is created, when a download
starts. The data directory is otherwise only read (tests point it at the read-only
``shared/data``); a download adds only verified files, under ``<data dir>/<dataset>/``.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, TypeVar

import platformdirs

from bench.records import BenchWarning, write_atomic

T = TypeVar("T")

APP_NAME = "hippo-bench"


class DataNotFoundError(FileNotFoundError):
    """A dataset's verified files are not there (absent, or their download failed).

    The message is what a user reads (the CLI prints it as one line): it names the folder or
    file, what was expected and what to do.
    """


class DataDirError(DataNotFoundError):
    """The data directory is missing or is not a folder; the message names who chose it."""


def resolve_data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: ``explicit``, else ``$BENCH_DATA_DIR``, else the per-user default."""
    if explicit is not None:
        return Path(explicit).expanduser()
    env = os.environ.get("BENCH_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir(APP_NAME)) / "data"


def data_dir_origin(explicit: str | os.PathLike[str] | None = None) -> str | None:
    """Who named the data directory :func:`resolve_data_dir` picks, for messages; None: the default."""
    if explicit is not None:
        return "--data-dir / data_dir="
    return "$BENCH_DATA_DIR" if os.environ.get("BENCH_DATA_DIR") else None


def check_data_dir(path: Path, origin: str | None, create: bool = False) -> None:
    """Raise :class:`DataDirError` unless ``path`` is a folder (``origin`` as :func:`data_dir_origin`).

    A named directory that does not exist is refused rather than created: it is far more often a
    typo than a wish for a new folder, and creating it would send a download somewhere nobody
    looks. The per-user default (``origin`` None) is created when ``create`` is set.
    """
    named = f"data directory {path} (from {origin or 'the per-user default'})"
    if path.is_dir():
        return
    if path.exists():
        raise DataDirError(f"{named} is a file; expected a folder holding the datasets")
    if origin is not None:
        raise DataDirError(
            f"{named} does not exist; expected an existing folder (fix the path, or create the "
            "folder first to have data downloaded into it)"
        )
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataDirError(
                f"{named} could not be created ({exc.strerror or exc}); point --data-dir or "
                "$BENCH_DATA_DIR at a writable folder"
            ) from exc


def cache_dir() -> Path:
    """Directory for processed caches (``$BENCH_CACHE_DIR`` or the per-user cache); created."""
    env = os.environ.get("BENCH_CACHE_DIR")
    path = (
        Path(env).expanduser() if env else Path(platformdirs.user_cache_dir(APP_NAME)) / "processed"
    )
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_cache(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write a cache file atomically: ``write(file)`` into a hidden temporary file beside
    ``path``, fsync, rename (:func:`bench.records.write_atomic`). Readers see the old file, the
    whole new one, or none: a crash or ``kill -9`` mid-write never leaves half a cache."""
    write_atomic(path, write, binary=True)


def read_cache(path: Path, read: Callable[[Path], T]) -> T | None:
    """``read(path)``, or None when there is no such file. A cache is derived data: one that
    does not load (truncated, corrupted, another layout) warns with one line and gives None,
    so the caller rebuilds it (and its atomic write replaces the damaged file)."""
    if not path.is_file():
        return None
    try:
        return read(path)
    except Exception as exc:  # torch's PytorchStreamReader RuntimeError, BadZipFile, EOFError, ...
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        warnings.warn(f"cache {path} is unreadable ({type(exc).__name__}: {reason}); rebuilding it",
                      BenchWarning, stacklevel=2)  # fmt: skip
        return None


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of one file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_files(paths: Iterable[str | os.PathLike[str]]) -> str:
    """One hex sha256 over several files: their names and contents, in the order given."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).name.encode())
        digest.update(bytes.fromhex(sha256_file(path)))
    return digest.hexdigest()


def find_uea_files(root: Path, name: str) -> tuple[str, dict[str, list[Path]]] | None:
    """The source files of ``name`` under ``root`` or ``root/name`` (searched recursively there).

    Returns ``("ts", {"TRAIN": [...], "TEST": [...]})`` when both ``.ts`` files are present (they
    are preferred), else ``("arff", ...)`` with the per-dimension files in dimension order, else None.
    """
    folders = [root / name, root] if (root / name).is_dir() else [root]

    def first(filename: str) -> Path | None:
        for folder in folders:
            if (folder / filename).is_file():
                return folder / filename
        if (root / name).is_dir():
            return next(iter(sorted((root / name).rglob(filename))), None)
        return None

    ts = {split: first(f"{name}_{split}.ts") for split in ("TRAIN", "TEST")}
    if all(ts.values()):
        return "ts", {split: [path] for split, path in ts.items()}
    arff: dict[str, list[Path]] = {}
    for split in ("TRAIN", "TEST"):
        arff[split] = []
        while path := first(f"{name}Dimension{len(arff[split]) + 1}_{split}.arff"):
            arff[split].append(path)
    if arff["TRAIN"] and len(arff["TRAIN"]) == len(arff["TEST"]):
        return "arff", arff
    return None
