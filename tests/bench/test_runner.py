"""The runner: records for ok and failed runs, resume, reruns on change, kill -9 safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from bench import records
from bench.progress import SuiteProgress
from bench.runner import run_suite, with_trainer_options

HERE = Path(__file__).parent


def _run(fakes, results_dir, **kw):
    specs = fakes.fake_suite("smoke", [0], models=("fake-gru", "fake-nan", "fake-crash"))
    return specs, run_suite(specs, results_dir, device="cpu", interactive=False, **kw)


def test_suite_records_ok_and_failed_runs_and_carries_on(fakes, results_dir):
    specs, result = _run(fakes, results_dir)
    by_model = {}
    for rec in result.records:
        by_model.setdefault(rec.spec.model, []).append(rec)
    assert len(result.records) == len(specs) == 6
    assert all(r.status == "ok" for r in by_model["fake-gru"])  # runs after the failures still ran
    nan, crash = by_model["fake-nan"][0], by_model["fake-crash"][0]
    assert nan.status == "failed" and "NonFiniteLossError" in nan.error and "Traceback" in nan.traceback
    assert crash.status == "failed" and "crashed on purpose" in crash.error

    ok = records.load_record(records.record_path(results_dir, "fake", by_model["fake-gru"][0].id))
    assert ok.metrics["test_acc"] > 0.5  # the fake task is learnable
    assert set(ok.metrics) >= {"test_acc", "val_acc_train_rate", "val_acc_eval_rate", "best_epoch"}
    assert set(ok.rate_curve) == {"0.5", "1.0"}
    assert [h["epoch"] for h in ok.history] == [0, 1]
    assert ok.throughput["train_samples_per_s"] > 0 and ok.num_parameters > 0
    assert ok.environment["torch"] == torch.__version__ and "git_commit" in ok.environment
    assert ok.started_at and ok.finished_at and ok.train_seconds > 0
    assert records.log_path(results_dir, "fake", ok.id).read_text()
    # The selected weights are a plain state_dict: loadable with weights_only=True.
    state = torch.load(results_dir / "fake" / "checkpoints" / ok.id / "best.pt", weights_only=True)
    assert "head.weight" in state


def test_resume_skips_finished_runs_and_reruns_failed_ones(fakes, results_dir):
    _run(fakes, results_dir)
    mtimes = {p: p.stat().st_mtime_ns for p in (results_dir / "fake" / "records").glob("*.json")}
    specs, again = _run(fakes, results_dir)
    assert again.skipped == 2  # the two fake-gru runs; the failed ones are tried again
    assert len(mtimes) == 6 == len(list((results_dir / "fake" / "records").glob("*.json")))
    _, fresh = _run(fakes, results_dir, resume=False)
    assert fresh.skipped == 0


def test_changed_spec_or_code_version_reruns(fakes, results_dir, monkeypatch):
    specs = fakes.fake_suite("smoke", [0], models=("fake-gru",))[:1]
    first = run_suite(specs, results_dir, interactive=False)
    assert run_suite(specs, results_dir, interactive=False).skipped == 1
    changed = [replace(specs[0], train={**specs[0].train, "epochs": 1})]
    assert run_suite(changed, results_dir, interactive=False).skipped == 0
    monkeypatch.setattr(fakes.FakeGRU, "code_version", "2")
    bumped = run_suite(specs, results_dir, interactive=False)
    assert bumped.skipped == 0 and bumped.records[0].id != first.records[0].id


def test_a_record_of_an_older_harness_is_rerun_not_reused(fakes, results_dir, monkeypatch):
    specs = fakes.clock_specs(["fake-gru"])  # two conditions, one computation (it ignores the clock)
    (old,) = run_suite(specs[:1], results_dir, device="cpu", interactive=False).records
    monkeypatch.setattr(records, "HARNESS_VERSION", "next")
    again = run_suite(specs, results_dir, device="cpu", interactive=False)
    new, copy = again.records
    assert again.skipped == 0 and new.id != old.id and new.reused_from is None  # it ran again
    assert copy.reused_from == new.id and again.reused == 1  # the copy is of the new run
    assert records.finished_record(results_dir, "fake", old.id) is not None  # the old one stays


def test_accelerator_joins_the_id_so_cpu_records_do_not_resume_cuda_runs(fakes, results_dir):
    specs = fakes.fake_suite("smoke", [0], models=("fake-gru",))[:1]
    funcapprox = replace(specs[0], task="funcapprox")
    cpu = with_trainer_options(specs + [funcapprox])
    cuda = with_trainer_options(specs + [funcapprox], accelerator="cuda")
    assert cpu == specs + [funcapprox]  # single-CPU ids (and committed records) are unchanged
    assert cuda[0].train["accelerator"] == "cuda" and cuda[1] == funcapprox  # funcapprox: CPU
    assert records.run_id(cuda[0], "1") != records.run_id(cpu[0], "1")
    two = with_trainer_options(specs, devices=2, accelerator="cuda")[0]
    assert {k: two.train[k] for k in ("devices", "accelerator")} == {"devices": 2, "accelerator": "cuda"}
    with pytest.raises(ValueError, match="accelerator 'cuda' but the device is 'cpu'"):
        run_suite(cuda[:1], results_dir, device="cpu", interactive=False)


DRIVER = """
import sys
sys.path.insert(0, {here!r})
import bench_fakes
bench_fakes.install()
import bench.suites
bench.suites.SUITES["fake"] = bench.suites.Suite("slow fake", lambda p, s, t, m: [
    r.__class__(**{{**r.to_dict(), "train": {{**r.train, "epochs": 15}}}})
    for r in bench_fakes.fake_suite(p, [0, 1, 2], t, models=("fake-gru",))], "fake-ok")
from bench.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_kill_minus_nine_leaves_no_corrupt_record_and_rerun_completes(tmp_path, results_dir):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER.format(here=str(HERE)))
    cmd = [sys.executable, str(driver), "run", "--suite", "fake", "--profile", "smoke",
           "--results-dir", str(results_dir), "--device", "cpu"]  # fmt: skip
    folder = results_dir / "fake" / "records"
    env = {**os.environ, "PYTHONPATH": str(HERE.parents[1])}  # this checkout's bench, not an installed one
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(folder.glob("*.json"))) < 2 and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, f"the suite ended before the kill: {proc.stderr.read().decode()[-3000:]}"
    os.kill(proc.pid, signal.SIGKILL)  # our own child, by pid
    proc.wait()
    done = list(folder.glob("*.json"))
    assert 2 <= len(done) < 6, "the kill should land mid-suite"
    for path in done:  # every record parses; a temporary file may remain, named so readers skip it
        json.loads(path.read_text())
        assert records.load_record(path).status == "ok"
    # the claim of the run in progress stays (a rerun takes it over: its process is dead)
    assert all(p.name.startswith(".") or p.suffix == ".claim" for p in folder.iterdir() if p not in done)
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert len(list(folder.glob("*.json"))) == 6 and not list(folder.glob("*.claim"))
    assert rerun.stdout.count(" skip ") == len(done)


CLAIM_DRIVER = """
import os, sys
sys.path.insert(0, {here!r})
import bench_fakes
bench_fakes.install()
import bench.suites
epochs = int(os.environ["FAKE_EPOCHS"])
bench.suites.SUITES["fake"] = bench.suites.Suite("slow fake", lambda p, s, t, m: [
    r.__class__(**{{**r.to_dict(), "train": {{**r.train, "epochs": epochs}}}})
    for r in bench_fakes.fake_suite(p, [0, 1], t, models=("fake-gru",))], "fake-ok")
from bench.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _claim_driver(tmp_path, results_dir, epochs: int) -> tuple[list[str], dict[str, str]]:
    driver = tmp_path / "claim_driver.py"
    driver.write_text(CLAIM_DRIVER.format(here=str(HERE)))
    cmd = [sys.executable, str(driver), "run", "--suite", "fake", "--profile", "smoke",
           "--results-dir", str(results_dir), "--device", "cpu"]  # fmt: skip
    # this checkout's bench (not an installed one), quick heartbeats so that waiting is short
    env = {**os.environ, "PYTHONPATH": str(HERE.parents[1]), "FAKE_EPOCHS": str(epochs),
           "BENCH_CLAIM_HEARTBEAT_S": "0.2"}  # fmt: skip
    return cmd, env


def _wait_for(condition, what: str, procs, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        for p in procs:
            assert p.poll() is None, f"a suite ended before {what}: {p.stderr.read()[-3000:]}"
        time.sleep(0.02)


def _claims(folder: Path) -> list[dict]:
    found = []
    for p in folder.glob("*.claim"):
        try:
            found.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            pass
    return found


def _statuses(stdout: str) -> dict[str, int]:
    return {s: stdout.count(f"] {s} ") for s in ("ok", "failed", "skip", "claimed")}


def test_two_bench_runs_on_one_results_dir_train_each_run_once(tmp_path, results_dir):
    """Two `bench run` of the suite at once: each skips the run the other is training, waits
    for its record (progress status `claimed`) and trains only what nobody claimed."""
    cmd, env = _claim_driver(tmp_path, results_dir, epochs=60)
    folder = results_dir / "fake" / "records"
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    second = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    outs = [p.communicate(timeout=600) for p in (first, second)]
    for p, (_, err) in zip((first, second), outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    counts = [_statuses(out) for out, _ in outs]
    assert counts[0]["ok"] + counts[1]["ok"] == 4, outs  # every run trained once, by one of them
    for c in counts:
        assert c["ok"] + c["skip"] + c["claimed"] == 4 and not c["failed"], outs
    assert counts[0]["claimed"] + counts[1]["claimed"] >= 1, outs  # they did overlap
    assert "claimed by another process" in outs[0][0] + outs[1][0]
    assert len(list(folder.glob("*.json"))) == 4 and not list(folder.glob("*.claim*"))


def test_a_killed_claimant_s_run_is_taken_over(tmp_path, results_dir):
    """kill -9 leaves the claim of the run in progress; a `bench run` beside it (same host, the
    claimant's pid dead) takes it over and finishes the suite; no claim is left behind."""
    # long enough runs that the second process, slower to start on a busy machine, claims one
    # while the first still trains
    cmd, env = _claim_driver(tmp_path, results_dir, epochs=400)
    folder = results_dir / "fake" / "records"
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                             start_new_session=True)  # fmt: skip
    second = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _wait_for(lambda: {c.get("pid") for c in _claims(folder)} >= {first.pid, second.pid}, "a claim of each",
              [first, second])  # fmt: skip
    os.kill(first.pid, signal.SIGKILL)  # our own child, by pid, while it trains a claimed run
    first.wait()
    done_by_first = len(list(folder.glob("*.json")))
    assert any(c.get("pid") == first.pid for c in _claims(folder))  # its claim is left behind
    out, err = second.communicate(timeout=600)
    assert second.returncode == 0, err[-3000:]
    counts = _statuses(out)
    assert counts["ok"] == 4 - done_by_first and counts["ok"] + counts["skip"] + counts["claimed"] == 4, out
    assert all(records.load_record(p).status == "ok" for p in folder.glob("*.json"))
    assert len(list(folder.glob("*.json"))) == 4 and not list(folder.glob("*.claim*"))


def test_runs_flush_subnormal_floats_and_say_so(fakes, results_dir, monkeypatch):
    import torch

    from bench import runner

    def subnormal_survives() -> bool:
        return torch.tensor([1e-40], dtype=torch.float32).item() != 0.0

    during = []
    run_itself = runner._execute_logged
    monkeypatch.setattr(runner, "_execute_logged",
                        lambda *args: (during.append(subnormal_survives()), run_itself(*args)))
    specs = fakes.fake_suite("smoke", [0], models=("fake-gru",))[:1]
    assert subnormal_survives()
    (record,) = run_suite(specs, results_dir, interactive=False).records
    assert record.status == "ok"
    supported = record.environment["flush_denormal"]  # False where the CPU has no such mode
    assert during == [not supported]
    assert subnormal_survives()  # torch's default is back for the caller


def test_runs_that_compute_the_same_thing_run_once(fakes, results_dir, monkeypatch):
    specs = fakes.clock_specs(("fake-gru", "fake-clock"))
    runs_to_come = []  # the ETA over the mean time of a run, after each real run
    real_finished = SuiteProgress.run_finished

    def run_finished(self, record, skipped, seconds, status=None):
        real_finished(self, record, skipped, seconds, status)
        if not skipped:
            runs_to_come.append(round(self.eta() / (self._timed_seconds / self._timed_runs), 6))

    monkeypatch.setattr(SuiteProgress, "run_finished", run_finished)
    result = run_suite(specs, results_dir, device="cpu", interactive=False)
    assert runs_to_come == [2, 1, 0]  # the copy to come is not counted as a run to come
    gru = [r for r in result.records if r.spec.model == "fake-gru"]
    clock = [r for r in result.records if r.spec.model == "fake-clock"]
    assert result.reused == 1 and all(r.status == "ok" for r in result.records)
    # the GRU ignores time: its second condition is a copy of the first, under its own id and spec
    assert gru[0].reused_from is None and gru[1].reused_from == gru[0].id != gru[1].id
    assert gru[1].spec == specs[2] and gru[1].metrics == gru[0].metrics and gru[1].history == gru[0].history
    assert gru[1].train_seconds == 0.0 < gru[0].train_seconds  # its time counted once
    assert gru[1].data_protocol["train_time_scale"] == 1.0 and gru[0].data_protocol["train_time_scale"] == 0.5
    assert records.load_record(records.record_path(results_dir, "fake", gru[1].id)).reused_from == gru[0].id
    # a model that reads the clock runs each condition, and they differ
    assert [r.reused_from for r in clock] == [None, None]
    assert all(r.train_seconds > 0 for r in clock) and clock[0].history != clock[1].history

    # resume: a lost copy is copied again from the finished record on disk, not retrained
    records.record_path(results_dir, "fake", gru[1].id).unlink()
    again = run_suite(specs, results_dir, device="cpu", interactive=False)
    assert again.skipped == 3 and again.reused == 1
    assert next(r for r in again.records if r.id == gru[1].id).reused_from == gru[0].id


def test_a_copy_of_a_failed_run_is_not_made(fakes, results_dir):
    result = run_suite(fakes.clock_specs(("fake-nan",)), results_dir, device="cpu", interactive=False)
    first, second = result.records
    assert first.status == second.status == "failed" and result.reused == 0
    assert second.error.startswith("not run: the run it would copy (fake-nan | ts 0.5->1.0 | seed 0)")
    assert second.reused_from == first.id


def test_the_cli_flushes_subnormals_on_every_intra_op_thread(tmp_path):
    # The mode is per thread: set before torch's pool exists, every pool thread inherits it.
    script = (
        "import torch\n"
        "from bench.cli import main\n"
        "main(['ls', 'suites'])\n"
        "torch.set_num_threads(2)\n"
        "x = torch.full((4_000_000,), 1e-39)\n"
        "print(int(((x * 0.5) != 0).sum()))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=HERE.parents[1])  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    if torch.set_flush_denormal(False):  # the CPU has the mode at all
        assert done.stdout.strip().splitlines()[-1] == "0"


def test_the_interactive_bar_shows_the_eta_of_runs_still_to_train(fakes, results_dir):
    specs = fakes.clock_specs(("fake-gru",))
    done = run_suite(specs, results_dir, device="cpu", interactive=False).records  # a run and its copy
    with SuiteProgress(4, "suite", interactive=True) as progress:
        progress.run_finished(done[0], skipped=True, seconds=0.0)  # resumed: takes no time
        assert progress._progress.tasks[0].fields["eta"] == "-"
        progress.copies_to_come = 1
        progress.run_finished(done[0], skipped=False, seconds=60.0)
        # 4 runs: 1 resumed, 1 trained in 60 s, 1 copy to come, so 1 run left to train
        assert progress._progress.tasks[0].fields["eta"] == "1m00s"


def test_a_run_line_gives_the_runs_own_time_and_the_eta_the_suites_pace(fakes, results_dir, capsys):
    # Two workers: the second run of a pair ends seconds after the first, though it ran as long.
    (record,) = run_suite(fakes.clock_specs(("fake-gru",))[:1], results_dir, device="cpu", interactive=False).records
    capsys.readouterr()
    record.started_at, record.finished_at = "2026-11-30T03:23:59+00:00", "2026-11-30T03:44:57+00:00"
    with SuiteProgress(4, "suite", interactive=False) as progress:
        progress.run_finished(record, skipped=False, seconds=1256.0)
        progress.run_finished(record, skipped=False, seconds=9.7)
    first, second = capsys.readouterr().out.splitlines()[1:]
    assert "(ran 20m58s; elapsed" in first and "(ran 20m58s; elapsed" in second
    assert second.endswith("eta 21m05s)")  # 2 runs left at the suite's pace, (1256 + 9.7) / 2 s a run


def test_the_summary_says_which_runs_were_skipped(fakes, results_dir):
    from bench.progress import summary_table

    specs = fakes.fake_suite("smoke", seeds=[0], models=["fake-gru"])
    first = run_suite(specs, results_dir, interactive=False)
    assert "skipped" not in summary_table(first.records, first.skipped_ids)
    again = run_suite(specs, results_dir, interactive=False)
    text = summary_table(again.records, again.skipped_ids)
    assert again.skipped_ids == {r.id for r in first.records}
    assert text.count("skipped (record exists)") == len(specs) and "ok " not in text
