"""Executors: worker processes and submitit jobs give the records a sequential run gives.

Each spawned worker or local submitit job re-imports torch (~5-10 s here), so these tests keep
to two workers and a handful of fake runs.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import bench_fakes
import pytest

from bench import records
from bench.executors import WORKER_DIED, ProcessesExecutor, SubmititExecutor, make_executor
from bench.models import list_models, register_model
from bench.runner import run_suite

HERE = Path(__file__).parent


class FakeDie(bench_fakes.FakeGRU):
    """Kills its own process at the first forward: a worker that dies without returning a record."""

    def forward(self, batch):
        os.kill(os.getpid(), signal.SIGKILL)


def setup_worker() -> None:
    """Runs in every worker process / job: the fakes, as the parent has them."""
    bench_fakes.install()
    if "fake-die" not in list_models():
        register_model("fake-die", f"{__name__}:FakeDie", "test stand-in: kills its worker")


@pytest.fixture
def fakes(monkeypatch):
    """The fakes in this process, with the model registry restored afterwards."""
    bench_fakes.install(monkeypatch)
    register_model("fake-die", f"{__name__}:FakeDie", "test stand-in: kills its worker")
    return bench_fakes


def _same_results(got, expected) -> None:
    assert [r.id for r in got] == [r.id for r in expected]
    for g, e in zip(got, expected, strict=True):
        assert g.status == e.status == "ok", g.error
        assert g.metrics["test_acc"] == e.metrics["test_acc"] and g.rate_curve == e.rate_curve
        assert g.metrics["best_epoch"] == e.metrics["best_epoch"]
        assert [h["train_loss"] for h in g.history] == pytest.approx([h["train_loss"] for h in e.history], rel=1e-4)


def test_processes_match_sequential_resume_and_survive_a_killed_worker(fakes, tmp_path):
    specs = fakes.fake_suite("smoke", [0, 1], models=("fake-gru",))  # 4 runs
    sequential = run_suite(specs, tmp_path / "seq", interactive=False).records

    parallel_dir = tmp_path / "par"
    copied = records.record_path(parallel_dir, "fake", sequential[0].id)  # finished in an earlier session
    copied.parent.mkdir(parents=True)
    shutil.copy(records.record_path(tmp_path / "seq", "fake", sequential[0].id), copied)
    die = fakes.fake_suite("smoke", [0], models=("fake-die",))[:1]
    executor = ProcessesExecutor(workers=2, setup=setup_worker)
    result = run_suite(specs + die, parallel_dir, interactive=False, executor=executor)

    assert result.skipped == 1  # resumed: the copied record is not rerun
    _same_results(result.records[:4], sequential)
    dead = result.records[4]
    assert dead.status == "failed" and dead.error == WORKER_DIED and dead.spec == die[0]
    saved = records.load_records(parallel_dir, "fake")
    assert sorted(r.id for r in saved) == sorted(r.id for r in result.records)  # the parent wrote them all
    assert all(r.environment["executor"] == {"kind": "processes", "workers": 2}
               for r in saved if r.id != sequential[0].id)  # fmt: skip

    again = run_suite(specs, parallel_dir, interactive=False, executor=executor)
    assert again.skipped == 4  # nothing left to run: no worker started

    # runs with one computation: the workers run it once, the parent writes the copy
    clock = run_suite(fakes.clock_specs(("fake-gru", "fake-clock")), parallel_dir, interactive=False,
                      executor=executor)  # fmt: skip
    assert clock.reused == 1 and all(r.status == "ok" for r in clock.records)
    assert [r.reused_from for r in clock.records] == [None, None, clock.records[0].id, None]


def test_submitit_local_cluster_matches_sequential(fakes, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    specs = fakes.fake_suite("smoke", [0], models=("fake-gru",))  # 2 runs, 2 local jobs
    sequential = run_suite(specs, tmp_path / "seq", interactive=False).records
    executor = SubmititExecutor(tmp_path / "jobs", cluster="local", workers=2, timeout_min=5, setup=setup_worker)
    result = run_suite(specs, tmp_path / "sub", interactive=False, executor=executor)
    _same_results(result.records, sequential)
    assert len(records.load_records(tmp_path / "sub", "fake")) == 2
    assert result.records[0].environment["executor"]["cluster"] == "local"


def test_make_executor_checks_options(tmp_path):
    assert make_executor("local").describe() == {"kind": "local"}
    assert isinstance(make_executor("submitit", results_dir=tmp_path, cluster="local"), SubmititExecutor)
    for kwargs, message in (
        (dict(kind="threads"), "unknown executor 'threads'"),
        (dict(kind="processes", workers=0), "--workers must be >= 1"),
        (dict(kind="processes", devices=2), "--devices/--num-nodes > 1"),
        (dict(kind="submitit", cluster="k8s"), "unknown submitit cluster 'k8s'"),
    ):
        with pytest.raises(ValueError, match=message):
            make_executor(**kwargs)
