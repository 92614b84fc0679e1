"""Every kind of run is one Task object: its functions resolve and its numbers are read."""

from __future__ import annotations

import pytest

from bench import records
from bench.records import RunRecord, RunSpec
from bench.suites import SUITES, build_suite
from bench.tasks import TASKS, compare_metrics, get_task, headline


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_is_one_module_with_its_run_report_and_numbers(name):
    task = get_task(name)
    assert task.name == name and task.run.__module__ == task.report.__module__ == f"bench.tasks.{name}"
    if task.version is not None:
        assert isinstance(task.version, str) and task.version
    assert task.compare and {m.name for m in task.compare} <= {m.name for m in compare_metrics()}


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
