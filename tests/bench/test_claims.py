"""Run claims (bench.claims): one claimant per run, heartbeats, stale claims taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from bench import claims
from bench.claims import Claims, claim_path, is_stale


def _foreign(path, heartbeat: float, host: str = "other-node", pid: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": host, "pid": pid, "token": "theirs", "started": heartbeat,
                                "heartbeat": heartbeat}))  # fmt: skip


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_claim_is_an_exclusive_file_with_host_pid_and_heartbeat(tmp_path):
    with Claims(tmp_path, heartbeat_s=0.05, stale_s=5) as mine:
        assert mine.acquire("s", "abc") is None
        path = claim_path(tmp_path, "s", "abc")
        first = json.loads(path.read_text())
        assert path == tmp_path / "s" / "records" / "abc.claim"
        assert first["host"] == socket.gethostname() and first["pid"] == os.getpid()
        assert mine.acquire("s", "abc") is None  # ours already
        deadline = time.time() + 10
        while json.loads(path.read_text())["heartbeat"] == first["heartbeat"] and time.time() < deadline:
            time.sleep(0.02)
        beat = json.loads(path.read_text())
        assert beat["heartbeat"] > first["heartbeat"] and beat["token"] == first["token"]
        mine.release("s", "abc")
        assert not path.exists()
        mine.acquire("s", "def")
    assert not claim_path(tmp_path, "s", "def").exists()  # leaving releases what is still held


def test_a_live_claim_of_another_process_is_left_alone(tmp_path):
    path = claim_path(tmp_path, "s", "abc")
    _foreign(path, time.time())
    with Claims(tmp_path, heartbeat_s=1, stale_s=60) as mine:
        holder = mine.acquire("s", "abc")
        assert holder is not None and claims.describe(holder) == "other-node:1"
        assert mine.holder("s", "abc") == holder
    assert json.loads(path.read_text())["token"] == "theirs"  # not ours: never removed


@pytest.mark.parametrize("why", ["old heartbeat", "dead pid on this host"])
def test_a_stale_claim_is_taken_over(tmp_path, why):
    path = claim_path(tmp_path, "s", "abc")
    if why == "old heartbeat":
        _foreign(path, time.time() - 61)
    else:
        _foreign(path, time.time(), host=socket.gethostname(), pid=_dead_pid())
    with Claims(tmp_path, heartbeat_s=1, stale_s=60) as mine:
        assert mine.holder("s", "abc") is None
        assert mine.acquire("s", "abc") is None
        assert json.loads(path.read_text())["pid"] == os.getpid()
        assert not path.with_name("abc.claim.takeover").exists()
    assert not path.exists()


def test_a_takeover_under_way_elsewhere_is_not_repeated(tmp_path):
    path = claim_path(tmp_path, "s", "abc")
    _foreign(path, time.time() - 100)
    path.with_name("abc.claim.takeover").write_text("")  # another process is replacing it
    with Claims(tmp_path, heartbeat_s=1, stale_s=60) as mine:
        assert mine.acquire("s", "abc") is not None
        assert json.loads(path.read_text())["token"] == "theirs"


def test_an_empty_claim_being_written_counts_as_live(tmp_path):
    path = claim_path(tmp_path, "s", "abc")
    path.parent.mkdir(parents=True)
    path.write_text("")  # created with O_EXCL, content not written yet
    assert not is_stale(claims.read_claim(path), 60)
    assert is_stale({"host": "x", "pid": 1, "heartbeat": time.time() - 61}, 60)


def test_claim_timings_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_CLAIM_STALE_S", "2.5")
    assert Claims(tmp_path).stale_s == 2.5
    monkeypatch.setenv("BENCH_CLAIM_HEARTBEAT_S", "-1")
    with pytest.raises(ValueError, match="BENCH_CLAIM_HEARTBEAT_S"):
        Claims(tmp_path)


@pytest.mark.parametrize("kind", ["local", "processes"])
def test_a_suite_waits_for_a_run_claimed_elsewhere_and_takes_it_over_when_stale(fakes, results_dir, kind,
                                                                                capsys, monkeypatch):  # fmt: skip
    """A run claimed by a live process elsewhere is not started; once its heartbeat is older
    than the timeout (that node died), the suite takes it over and trains it."""
    from bench import records
    from bench.executors import ProcessesExecutor
    from bench.runner import _rid, run_suite

    monkeypatch.setenv("BENCH_CLAIM_HEARTBEAT_S", "0.05")
    monkeypatch.setenv("BENCH_CLAIM_STALE_S", "1.5")
    specs = fakes.fake_suite("smoke", [0], models=("fake-gru",))
    path = claim_path(results_dir, "fake", _rid(specs[0]))
    _foreign(path, time.time())
    executor = None
    if kind == "processes":
        from test_executors import setup_worker

        executor = ProcessesExecutor(workers=2, setup=setup_worker)
    start = time.time()
    result = run_suite(specs, results_dir, device="cpu", interactive=False, executor=executor)
    assert time.time() - start >= 1.0  # it waited for the claim to go stale
    out = capsys.readouterr().out
    assert "1 run(s) claimed by another process" in out
    if kind == "local":  # (spawning workers may take longer than the stale timeout)
        assert "claimed by another process (other-node:1)" in out
    assert [r.status for r in result.records] == ["ok", "ok"] and result.skipped == 0
    assert out.count("] ok ") == 2 and not path.exists()
    assert records.finished_record(results_dir, "fake", _rid(specs[0])) is not None
