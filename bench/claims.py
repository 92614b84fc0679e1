"""Run claims: two ``bench run`` on one results directory train each run once.

Before a run starts, the process that will write its record claims it: it creates
``<suite>/records/<id>.claim`` with ``O_CREAT | O_EXCL`` (atomic on one machine and on NFS v3+),
a JSON object with ``host``, ``pid``, ``token`` (unique per claim), ``started`` and
``heartbeat`` (Unix seconds). A heartbeat thread rewrites the claims it holds every
``heartbeat_s`` seconds (atomically: a reader sees the old or the new file). Another process
(another terminal, a SLURM array task, another node on a shared file system) finds the file
and leaves the run alone while the claim is live; a claim is *stale* when its heartbeat is
older than ``stale_s`` seconds (the holder hung or its node died), or when it was made on this
host by a process that no longer exists (``kill -9``: taken over at once). A stale claim is
taken over under a short takeover lock (``<id>.claim.takeover``, also ``O_EXCL``), so of two
processes that find one stale claim only one replaces it. A claim is removed when its record
is written (ok or failed) or when its process stops without one (an exception, Ctrl-C), so
the others resume that run at once.

The timings can be set with ``$BENCH_CLAIM_HEARTBEAT_S`` and ``$BENCH_CLAIM_STALE_S``
(defaults 30 s and 180 s; the stale timeout should be several heartbeats, and longer than any
pause of a loaded file system).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import records

HEARTBEAT_S = 30.0
STALE_S = 180.0


def _env_seconds(name: str, default: float) -> float:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise ValueError(f"${name} must be a positive number of seconds, got {text!r}")
    return value


def claim_path(results_dir: str | Path, suite: str, rid: str) -> Path:
    """``<suite>/records/<id>.claim``: beside the record it will become."""
    return records.record_path(results_dir, suite, rid).with_suffix(".claim")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence check only, nothing is sent
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else (or cannot tell: assume it lives)
    return True


def read_claim(path: Path) -> dict[str, Any] | None:
    """The claim's JSON, ``{}`` when the file is there but not (yet) readable, None when absent.

    A claim is written right after its ``O_EXCL`` creation, so a reader may see it empty for an
    instant: it then counts as live from the file's modification time.
    """
    try:
        text = path.read_text()
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return {"heartbeat": mtime}
    return data if isinstance(data, dict) else {"heartbeat": mtime}


def is_stale(claim: dict[str, Any], stale_s: float, now: float | None = None) -> bool:
    """A claim whose heartbeat is older than ``stale_s``, or whose process on this host is dead."""
    now = time.time() if now is None else now
    beat = claim.get("heartbeat")
    if not isinstance(beat, int | float) or now - beat > stale_s:
        return True
    pid = claim.get("pid")
    if claim.get("host") == socket.gethostname() and isinstance(pid, int):
        if pid == os.getpid():  # left by this process (an earlier suite in one session), not held now
            return True
        return not _pid_alive(pid)
    return False


def describe(claim: dict[str, Any]) -> str:
    """``host:pid`` of a claim's holder."""
    return f"{claim.get('host', '?')}:{claim.get('pid', '?')}"


@dataclass
class Claims:
    """The claims this process holds in one results directory, and their heartbeat thread.

    Use as a context manager: leaving it stops the heartbeat and removes every claim still
    held (a run that did not finish is free for the others again).
    """

    results_dir: Path
    heartbeat_s: float = field(default_factory=lambda: _env_seconds("BENCH_CLAIM_HEARTBEAT_S", HEARTBEAT_S))
    stale_s: float = field(default_factory=lambda: _env_seconds("BENCH_CLAIM_STALE_S", STALE_S))
    held: dict[Path, dict[str, Any]] = field(default_factory=dict)

    @property
    def poll_s(self) -> float:
        """How often a process waiting for another's runs looks at their claims and records."""
        return min(5.0, self.heartbeat_s)

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def __enter__(self) -> Claims:
        self._thread = threading.Thread(target=self._beat, name="bench-claim-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for path in list(self.held):
            self.release_path(path)

    def _content(self) -> dict[str, Any]:
        now = time.time()
        return {"host": socket.gethostname(), "pid": os.getpid(), "token": uuid.uuid4().hex,
                "started": now, "heartbeat": now}  # fmt: skip

    def _create(self, path: Path) -> bool:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        content = self._content()
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(content))
        with self._lock:
            self.held[path] = content
        return True

    def _take_over(self, path: Path) -> bool:
        """Replace the stale claim at ``path`` with ours, under the takeover lock."""
        lock = path.with_name(path.name + ".takeover")
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:  # another process is taking it over; a lock left by a crash expires
            try:
                if time.time() - lock.stat().st_mtime > self.stale_s:
                    lock.unlink(missing_ok=True)
            except FileNotFoundError:
                pass
            return False
        os.close(fd)
        try:
            current = read_claim(path)
            if current is None:  # released meanwhile: an ordinary claim
                return self._create(path)
            if not is_stale(current, self.stale_s):
                return False
            content = self._content()
            records.write_atomic(path, json.dumps(content))
            with self._lock:
                self.held[path] = content
            return True
        finally:
            lock.unlink(missing_ok=True)

    def acquire(self, suite: str, rid: str) -> dict[str, Any] | None:
        """Claim run ``rid``: None when we hold it now, else the live claim of its holder."""
        path = claim_path(self.results_dir, suite, rid)
        if path in self.held:
            return None
        for _ in range(3):  # the holder may release between our reads: look again
            if self._create(path):
                return None
            current = read_claim(path)
            if current is None:
                continue
            if not is_stale(current, self.stale_s):
                return current
            if self._take_over(path):
                return None
        return read_claim(path) or {}

    def holder(self, suite: str, rid: str) -> dict[str, Any] | None:
        """The live claim on ``rid`` held by another process, or None (free, stale or ours)."""
        path = claim_path(self.results_dir, suite, rid)
        if path in self.held:
            return None
        current = read_claim(path)
        return None if current is None or is_stale(current, self.stale_s) else current

    def release(self, suite: str, rid: str) -> None:
        self.release_path(claim_path(self.results_dir, suite, rid))

    def release_path(self, path: Path) -> None:
        """Remove our claim at ``path`` (only if the file there is still ours)."""
        with self._lock:  # with the heartbeat's lock: it never rewrites a claim removed here
            content = self.held.pop(path, None)
            if content is None:
                return
            current = read_claim(path)
            if current is not None and current.get("token") == content["token"]:
                path.unlink(missing_ok=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            with self._lock:
                for path, content in list(self.held.items()):
                    current = read_claim(path)
                    if current is not None and current.get("token") != content["token"]:
                        del self.held[path]  # taken over by another process (we were stale)
                        continue
                    try:
                        records.write_atomic(path, json.dumps({**content, "heartbeat": time.time()}))
                    except OSError:
                        pass  # a passing file-system error: the next beat tries again
