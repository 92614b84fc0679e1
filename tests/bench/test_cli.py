"""The command line: the smoke timescale suite end to end, listings, help, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_checks import assert_one_line_error

from bench.cli import main
from bench.suites import EVAL_RATES

REPO = Path(__file__).resolve().parents[2]


def bench(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout, env={**os.environ, **(env or {})})  # fmt: skip


def test_timescale_smoke_end_to_end(data_dir, tmp_path):
    """The whole smoke timescale suite through `python -m bench`: records, tables and plots parse."""
    results = tmp_path / "results"
    proc = bench("run", "--suite", "timescale", "--profile", "smoke", "--data-dir", str(data_dir),
                 "--results-dir", str(results), "--device", "cpu", timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "CUDA_HOME" not in proc.stderr  # torch's cpp_extension notice is silenced at its source
    recs = [json.loads(p.read_text()) for p in (results / "timescale" / "records").glob("*.json")]
    assert len(recs) == 18
    assert all(r["status"] == "ok" for r in recs), [r["error"] for r in recs if r["status"] != "ok"]
    for r in recs:
        metrics, history, eval_hz = r["metrics"], r["history"], r["spec"]["data"]["eval_hz"]
        assert 0 <= metrics["test_acc"] <= 1 and set(r["rate_curve"]) == {str(h) for h in EVAL_RATES}
        assert r["spec"]["data"]["time"] == "index" and history and r["throughput"]
        # both selections from the one run: each epoch is the earliest argmax of its history
        at_train = [e["val_acc_train_rate"] for e in history]
        at_eval = [e["val_acc_eval_rate"] for e in history]
        assert metrics["best_epoch"] == at_train.index(max(at_train))
        assert metrics["best_epoch_eval_selected"] == at_eval.index(max(at_eval))
        # evaluated with the selected weights: validation as the history has it at that epoch,
        # and the curve at the evaluation rate is the test accuracy
        assert metrics["val_acc_train_rate"] == at_train[metrics["best_epoch"]]
        assert r["rate_curve"][str(eval_hz)] == metrics["test_acc"]
        assert 0 <= metrics["test_acc_eval_selected"] <= 1
    folder = results / "timescale"
    md = (folder / "table.md").read_text()
    assert "100Hz->200Hz" in md and "(1)" in md and "Chance level" in md and "index" in md
    assert "± 0.0" not in md  # one seed: no made-up spread
    # honest table, reference-protocol table, accuracy at the training rate, per-model settings
    assert (folder / "table.tex").read_text().count(r"\begin{tabular}") == 4
    assert "reference protocol (selection at the evaluation rate)" in md and "Settings of each model" in md
    assert "TRAINING rate" in md
    for name in ("accuracy", "accuracy_vs_rate", "accuracy_vs_throughput"):
        assert (folder / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert (folder / f"{name}.pdf").read_bytes()[:4] == b"%PDF"
    # Rerun: everything ok is skipped; report rebuilds from the records alone.
    again = bench("run", "--suite", "timescale", "--profile", "smoke", "--data-dir", str(data_dir),
                  "--results-dir", str(results), "--device", "cpu", "--models", "lstm,gru", timeout=300)  # fmt: skip
    assert again.stdout.count(" skip ") == sum(r["spec"]["model"] in ("lstm", "gru") for r in recs)
    (folder / "table.md").unlink()
    rep = bench("report", "--suite", "timescale", "--results-dir", str(results))
    assert rep.returncode == 0 and (folder / "table.md").exists()


@pytest.mark.parametrize("args, fragments", [
    (["run", "--suite", "nope"], ["unknown suite 'nope'", "timescale"]),
    (["run", "--suite", "timescale", "--models", "lstm,nope"], ["unknown model 'nope'", "hippo-legs"]),
    (["run", "--suite", "timescale", "--profile", "huge"], ["unknown profile 'huge'", "smoke"]),
    (["run", "--suite", "timescale", "--time", "wall"], ["unknown time mode 'wall'"]),
    (["report", "--suite", "nope"], ["unknown suite 'nope'"]),
    (["run", "--suite", "timescale", "--seeds", "-1"], ["--seeds", "from 0 to 4294967295", "-1"]),
    (["run", "--suite", "timescale", "--seeds", "0,4294967296"], ["--seeds", "4294967296"]),
])  # fmt: skip
def test_bad_names_exit_2_with_one_line(args, fragments, capsys):
    assert_one_line_error(args, capsys, *fragments)


def test_data_dir_without_data(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    # No network in CI: a download attempt must also end in the one-line message.
    assert_one_line_error(["run", "--suite", "timescale", "--profile", "smoke", "--data-dir", str(empty),
                           "--results-dir", str(tmp_path / "r"), "--device", "cpu"], capsys, "CharacterTrajectories")  # fmt: skip


def test_unwritable_results_dir(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")  # works as root too, unlike chmod
    assert_one_line_error(["run", "--suite", "timescale", "--profile", "smoke",
                           "--results-dir", str(blocker / "results")], capsys, "not writable")  # fmt: skip


def test_report_without_records(tmp_path, capsys):
    assert_one_line_error(["report", "--suite", "timescale", "--results-dir", str(tmp_path)], capsys,
                          "no records for suite 'timescale'")  # fmt: skip


def test_ls_and_help():
    models = bench("ls", "models")
    assert models.returncode == 0, models.stderr
    for name in ("hippo-legs", "lstm", "ncde", "lmu"):
        assert name in models.stdout
    assert "parameters" in models.stdout
    suites = main(["ls", "suites"])
    assert suites == 0
    datasets = bench("ls", "datasets")
    assert datasets.returncode == 0 and "character-trajectories" in datasets.stdout
    for args in ([], ["run"], ["report"], ["ls"]):
        out = bench(*args, "--help")
        assert out.returncode == 0 and "usage:" in out.stdout and len(out.stdout.splitlines()) < 50
