"""Where a run ran: code revision, library versions, device and host (written into every record)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

_REPO_ROOT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=_REPO_ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None  # no git, or not a checkout (an installed wheel): say so with None
    return out.stdout.strip()


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_state() -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` for the checkout the harness runs from."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit is not None else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def under_version_control(path: str | Path) -> bool:
    """Whether ``path`` (an existing folder) is inside a git work tree and not ignored there."""
    def git(*args: str) -> int | None:
        try:
            return subprocess.run(["git", "-C", str(path), *args], capture_output=True, timeout=10).returncode
        except (OSError, subprocess.SubprocessError):
            return None

    return git("rev-parse", "--is-inside-work-tree") == 0 and git("check-ignore", "-q", ".") == 1


def dirty_results_warning(results_dir: str | Path) -> str | None:
    """The one-line warning for records about to be written from a modified checkout into a
    results directory under version control (reports mark them ‡), or None."""
    state = git_state()
    if not state["dirty"] or not under_version_control(results_dir):
        return None
    return (f"the checkout {_REPO_ROOT} has uncommitted changes: records written to {results_dir} (under version "
            f"control) are marked as from a modified tree (‡) in reports; commit first to record code that exists")  # fmt: skip


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return _cpu_model() or platform.processor() or platform.machine() or "cpu"


def _cpu_model() -> str | None:
    """The CPU's model name (Linux), so compare never treats two different CPUs as one machine."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    except OSError:
        pass
    return None


def collect_environment(device: torch.device) -> dict[str, Any]:
    """Git commit and dirtiness, versions, CUDA, device, host and CPU count."""
    return {
        **{f"git_{k}": v for k, v in git_state().items()},
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "torch": torch.__version__,
        "lightning": _version("lightning"),
        "torchcde": _version("torchcde"),
        "torchdiffeq": _version("torchdiffeq"),
        "numpy": _version("numpy"),
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "device": str(device),
        "device_name": device_name(device),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }


@contextmanager
def kernels_run() -> Iterator[dict[str, str]]:
    """The kernel paths run inside the block, for a record's ``environment["kernels"]``: the dict
    it yields is filled as the block ends, e.g. ``{"selective_scan": "compiled-cpu"}``
    (:func:`hippo.scan.paths_used`; empty when no selective scan ran)."""
    from hippo import scan

    scan.reset_paths_used()
    found: dict[str, str] = {}
    try:
        yield found
    finally:
        found.update(scan.paths_used())


# On a CPU shared with other work, torch's intra-op threads wait on each other at every op: a quick
# hippo-legs run took 303 s of training with torch's default 2 threads on a loaded 2-core machine
# against 8 s alone, and one thread per run avoids it (benchmarks/test_bench_threads.py).
DEFAULT_CPU_THREADS = 1


def run_threads(threads: int | None, device: torch.device | str) -> int | None:
    """The torch thread count a run gets: ``threads`` if the user asked (``--threads``), else
    :data:`DEFAULT_CPU_THREADS` on CPU; None (left as torch has it) for a CUDA run not asked."""
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"--threads must be an integer >= 1, got {threads!r}")
        return threads
    return DEFAULT_CPU_THREADS if torch.device(device).type == "cpu" else None


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` inside the block (None: unchanged), restored after it."""
    before = torch.get_num_threads()
    if threads is not None and threads != before:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
