"""Every kind of run is one Task object: its functions resolve and its numbers are read."""

from __future__ import annotations

import pytest

from bench import records
from bench.compare import METRICS
from bench.progress import headline
from bench.records import RunRecord, RunSpec
from bench.suites import SUITES, build_suite
from bench.tasks import TASKS, get_task


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_resolves_its_functions(name):
    task = TASKS[name]
    assert callable(task.load("run")) and callable(task.load("report"))
    if task.version is not None:
        assert str(task.load("version"))
    assert {m.name for m in task.compare} <= {m.name for m in METRICS}


def test_every_suite_builds_runs_of_a_known_task():
    assert {get_task(build_suite(name, "smoke")[0].task).name for name in SUITES} == set(TASKS)


def test_unknown_task_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown task 'stream'; valid tasks: classification"):
        get_task("stream")


def test_the_headline_is_the_tasks_number():
    spec = RunSpec(suite="funcapprox", task="funcapprox", dataset=None, condition="N=8", model="legs", seed=0,
                   profile="smoke")  # fmt: skip
    record = RunRecord(id=records.run_id(spec, "1"), spec=spec, code_version="1", status="ok",
                       metrics={"mse": 1.5e-3, "test_acc": 0.5})  # fmt: skip
    assert headline(record) == "mse 0.0015"
