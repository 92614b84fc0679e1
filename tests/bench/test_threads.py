"""Torch threads per run: one on CPU unless ``--threads`` says otherwise, CUDA runs left alone,
the choice said in one line and recorded in ``environment["torch_threads"]`` (speed:
benchmarks/test_bench_threads.py)."""

from __future__ import annotations

from concurrent.futures import Future

import bench_fakes
import pytest
import torch
from cli_checks import assert_one_line_error

from bench import api
from bench.environment import run_threads, torch_threads
from bench.executors import ProcessesExecutor, make_executor, threads_note
from bench.runner import LocalExecutor, run_suite


@pytest.fixture
def two_threads():
    """Torch at 2 threads (its default on a 2-core machine) around the test, restored after."""
    with torch_threads(2):
        yield


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_bad_threads_exit_2_with_one_line(value, capsys):
    assert_one_line_error(["run", "--suite", "timescale", "--threads", value], capsys, "--threads", value)


def test_threads_are_checked_by_the_api():
    with pytest.raises(api.UsageError, match="--threads must be an integer >= 1, got 0"):
        api.run("timescale", threads=0)
    with pytest.raises(ValueError, match="--threads"):
        make_executor("local", threads=0)
    assert run_threads(None, "cpu") == 1 and run_threads(None, "cuda") is None and run_threads(3, "cuda") == 3
    assert make_executor("local", threads=3).threads == 3
    assert make_executor("processes", threads=2).threads == 2
    assert make_executor("submitit", threads=2, cluster="local").threads == 2


def test_the_local_executor_runs_one_thread_on_cpu_and_restores_torch(monkeypatch, tmp_path, two_threads):
    bench_fakes.install(monkeypatch)
    spec = bench_fakes.fake_suite("smoke", [0], models=("fake-gru",))[0]
    default = run_suite([spec], tmp_path / "a", interactive=False).records[0]  # the default executor
    asked = run_suite([spec], tmp_path / "b", interactive=False, executor=LocalExecutor(threads=3)).records[0]
    assert default.status == asked.status == "ok"
    assert default.environment["torch_threads"] == 1 and asked.environment["torch_threads"] == 3
    assert default.id == asked.id  # the thread count is not part of the run id
    assert torch.get_num_threads() == 2  # the caller's threads are back


class _InlinePool:
    """A worker slot that runs its spec in this process (no spawn): what the executor asked for
    its worker is what the test checks."""

    def submit(self, fn, *args):
        future = Future()
        future.set_result(fn(*args))
        return future

    def shutdown(self, **kwargs):
        pass


def test_processes_workers_get_one_thread_on_cpu(monkeypatch, tmp_path):
    bench_fakes.install(monkeypatch)
    monkeypatch.setattr("os.cpu_count", lambda: 8)  # the old default: 8 // workers threads each
    asked: list[int] = []

    def slot(self, index, threads, gpus):
        asked.append(threads)
        return _InlinePool()

    monkeypatch.setattr(ProcessesExecutor, "_slot", slot)
    specs = bench_fakes.fake_suite("smoke", [0], models=("fake-gru",))
    run_suite(specs, tmp_path / "a", interactive=False, executor=ProcessesExecutor(workers=2))
    run_suite(specs, tmp_path / "b", interactive=False, executor=ProcessesExecutor(workers=2, threads=3))
    assert asked == [1, 1, 3, 3]


def test_the_choice_is_said_in_one_line(monkeypatch, tmp_path, capsys):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert threads_note(LocalExecutor(), cpu, 4) == ("CPU: 1 torch thread(s) per run (the default), 1 run at a "
                                                     "time (--threads N, or --executor processes --workers N, to change)")  # fmt: skip
    assert threads_note(LocalExecutor(4), cpu, 4).startswith("CPU: 4 torch thread(s) per run, 1 run at a time")
    assert threads_note(ProcessesExecutor(workers=3), cpu, 2).startswith(
        "CPU: 1 torch thread(s) per run (the default), 2 run(s) at a time in worker processes")
    assert threads_note(LocalExecutor(), cuda, 1).startswith("CUDA: torch's CPU threads left as they are")
    assert threads_note(make_executor("submitit", cluster="local"), cpu, 1) is None

    bench_fakes.install(monkeypatch)
    specs = bench_fakes.fake_suite("smoke", [0], models=("fake-gru",))[:1]
    api.run_specs(specs, cpu, results_dir=tmp_path, write_report=False, interactive=False)
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if "torch thread" in line] == [threads_note(LocalExecutor(), cpu, 1)]
