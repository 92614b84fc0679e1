"""Test-wide settings: the real datasets from ../shared/data and a private cache directory.

Tests that need the real data skip when it is absent, except under ``CI=true`` (what CI
runners set, and ``.ci/run``): there a missing data folder fails them, so a CI run can never
pass having tested none of the real-data paths.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# Point the data layer at the shared real data unless the caller chose otherwise.
os.environ.setdefault("BENCH_DATA_DIR", str(SHARED_DATA))
os.environ.setdefault("MPLBACKEND", "Agg")


def data_missing(message: str) -> NoReturn:
    """Skip the test for absent real data (``message`` says what is missing where); fail under CI."""
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"{message}; CI=true: the real data must be there", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def require_data() -> Callable[[str], NoReturn]:
    """:func:`data_missing`, for the fixtures and tests that find the real data absent."""
    return data_missing


@pytest.fixture(scope="session", autouse=True)
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Processed-data caches go to a temporary directory, never to the user's cache."""
    if "BENCH_CACHE_DIR" not in os.environ:
        os.environ["BENCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("bench-cache"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real datasets (CharacterTrajectories arff, MNIST raw IDX); skips if absent (CI: fails)."""
    path = Path(os.environ["BENCH_DATA_DIR"])
    if not (path / "CharacterTrajectories").is_dir():
        data_missing(f"real data not found at {path} (set BENCH_DATA_DIR)")
    return path
