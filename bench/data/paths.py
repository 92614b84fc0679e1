"""Where data and processed caches live, and the error for data that is not there.

Data directory: the constructor's ``data_dir``, else ``$BENCH_DATA_DIR``, else
``<per-user cache>/data`` (platformdirs). Processed caches: ``$BENCH_CACHE_DIR``, else
``<per-user cache>/processed``. The data directory is only ever read (tests point it at the
read-only ``shared/data``); everything this package writes goes to the cache directory.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import platformdirs

APP_NAME = "hippo-bench"


class DataNotFoundError(FileNotFoundError):
    """A dataset's files are absent; the message says what to download and where to put it."""


def resolve_data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: ``explicit``, else ``$BENCH_DATA_DIR``, else the per-user default."""
    if explicit is not None:
        return Path(explicit).expanduser()
    env = os.environ.get("BENCH_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir(APP_NAME)) / "data"


def cache_dir() -> Path:
    """Directory for processed caches (``$BENCH_CACHE_DIR`` or the per-user cache); created."""
    env = os.environ.get("BENCH_CACHE_DIR")
    path = (
        Path(env).expanduser() if env else Path(platformdirs.user_cache_dir(APP_NAME)) / "processed"
    )
    path.mkdir(parents=True, exist_ok=True)
    return path


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
