"""Fixtures of the data tests: the shared (read-only) data folder and a private cache folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# tests/bench/data/conftest.py -> parents[3] is the repository root; shared/ sits beside it.
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def bench_cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """Processed caches go to a temporary folder, never to the user's cache or shared/data."""
    path = tmp_path_factory.mktemp("bench-cache")
    old = os.environ.get("BENCH_CACHE_DIR")
    os.environ["BENCH_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("BENCH_CACHE_DIR", None)
    else:
        os.environ["BENCH_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def shared_data_dir(require_data) -> Path:
    """``$BENCH_DATA_DIR`` or ``../shared/data`` beside the repository (read only); absent: the
    test skips (fails under CI=true)."""
    path = Path(os.environ.get("BENCH_DATA_DIR") or DEFAULT_DATA_DIR).resolve()
    if not path.is_dir():
        require_data(
            f"shared data folder {path} is absent (set BENCH_DATA_DIR to the folder holding "
            "CharacterTrajectories/ and MNIST/raw/)"
        )
    return path


@pytest.fixture(scope="session")
def ct_dir(shared_data_dir: Path, require_data) -> Path:
    if not (shared_data_dir / "CharacterTrajectories").is_dir():
        require_data(f"{shared_data_dir}/CharacterTrajectories is absent")
    return shared_data_dir


@pytest.fixture(scope="session")
def mnist_dir(shared_data_dir: Path, require_data) -> Path:
    if not (shared_data_dir / "MNIST" / "raw").is_dir():
        require_data(f"{shared_data_dir}/MNIST/raw is absent")
    return shared_data_dir
