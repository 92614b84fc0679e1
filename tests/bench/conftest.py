"""Fixtures for the harness tests: fakes installed, a results directory, the real data directory."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # bench_fakes, also importable by subprocess drivers

import bench_fakes  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fakes(monkeypatch):
    bench_fakes.install(monkeypatch)
    return bench_fakes


@pytest.fixture
def results_dir(tmp_path):
    return tmp_path / "results"


@pytest.fixture(scope="session")
def data_dir(require_data) -> Path:
    """The real datasets: $BENCH_DATA_DIR, else <repo>/../shared/data; tests needing it skip
    otherwise (fail under CI=true)."""
    path = Path(os.environ.get("BENCH_DATA_DIR", REPO.parent / "shared" / "data"))
    if not (path / "CharacterTrajectories").exists():
        require_data(f"real data not found in {path}")
    return path
