"""Test-wide settings: the real datasets from ../shared/data and a private cache directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# Point the data layer at the shared real data unless the caller chose otherwise.
os.environ.setdefault("BENCH_DATA_DIR", str(SHARED_DATA))
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session", autouse=True)
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Processed-data caches go to a temporary directory, never to the user's cache."""
    if "BENCH_CACHE_DIR" not in os.environ:
        os.environ["BENCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("bench-cache"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real datasets (CharacterTrajectories arff, MNIST raw IDX); skips if absent."""
    path = Path(os.environ["BENCH_DATA_DIR"])
    if not (path / "CharacterTrajectories").is_dir():
        pytest.skip(f"real data not found at {path} (set BENCH_DATA_DIR)")
    return path
