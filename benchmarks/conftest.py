"""Benchmarks run as the harness runs: subnormal floats flushed to zero (see bench.runner.execute)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def flush_denormal():
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)
