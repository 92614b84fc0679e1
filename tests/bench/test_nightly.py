"""``bench nightly`` on a fake suite (first night, then a regression against history) and ``bench compare``."""

from __future__ import annotations

import json

import bench_fakes
import pytest

import bench.models.registry as registry
import bench.suites
from bench import records
from bench.cli import main
from bench.suites import Suite


@pytest.fixture
def fakes(monkeypatch):
    """The fakes with a suite of two ok runs; the model registry is restored afterwards."""
    monkeypatch.setattr(registry, "MODELS", registry.MODELS.copy())
    bench_fakes.install(monkeypatch)
    monkeypatch.setitem(bench.suites.SUITES, "fake", Suite("fake suite, ok runs only", bench_fakes.fake_suite, "fake-ok"))
    return bench_fakes


def nightly(root, day, *extra):
    return main(["nightly", "--profile", "smoke", "--suites", "fake", "--device", "cpu", "--history", str(root),
                 "--results-dir", str(root / day), *extra])  # fmt: skip


def one_line_error(capsys, code) -> str:
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error: "), lines
    return lines[0]


def test_first_night_then_a_regression_against_history(fakes, tmp_path, capsys):
    root = tmp_path / "nightly" / "smoke"
    assert nightly(root, "2000-01-02") == 0  # first night: no history, runs ok
    summary = (root / "2000-01-02" / "summary.md").read_text()
    assert "**OK**" in summary and "| fake | 2 | 2 | 0 | 0 |" in summary and "first night" in summary
    assert not (root / "2000-01-02" / "compare.json").exists()

    # An earlier night that was twice as fast: tonight's training throughput has regressed.
    for rec in records.load_records(root / "2000-01-02", "fake"):
        rec.throughput["train_samples_per_s"] *= 2
        records.save_record(root / "2000-01-01", rec)
    capsys.readouterr()
    assert nightly(root, "2000-01-02") == 1  # resumed (nothing reruns), compared, regressed
    summary = (root / "2000-01-02" / "summary.md").read_text()
    assert "**REGRESSED**" in summary and "| fake | 2 | 2 | 0 | 2 |" in summary
    assert "### Regressions" in summary and "train_samples_per_s" in summary
    assert summary in capsys.readouterr().out
    found = json.loads((root / "2000-01-02" / "compare.json").read_text())
    assert {f["metric"] for f in found["findings"] if f["regressed"]} == {"train_samples_per_s"}
    assert found["baseline_dirs"] == [str(root / "2000-01-01")]
    # Only accuracy fails the night: the throughput regression is reported, exit 0.
    assert nightly(root, "2000-01-02", "--fail-on", "accuracy") == 0


def test_nightly_bad_input_is_one_line(fakes, tmp_path, capsys):
    assert "unknown suite 'nope'" in one_line_error(capsys, main(["nightly", "--suites", "fake,nope", "--results-dir", str(tmp_path)]))  # fmt: skip
    assert "--results-dir DIR or --history ROOT" in one_line_error(capsys, main(["nightly", "--suites", "fake"]))
    assert "--devices/--num-nodes > 1" in one_line_error(capsys, main(
        ["nightly", "--suites", "fake", "--results-dir", str(tmp_path), "--executor", "processes", "--devices", "2"]))  # fmt: skip


def test_compare_in_the_cli(fakes, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["compare", "--help"])
    assert exit_.value.code == 0 and "--baseline DIR [DIR ...]" in capsys.readouterr().out
    assert "no run records in" in one_line_error(
        capsys, main(["compare", "--baseline", str(tmp_path), "--candidate", str(tmp_path)]))  # fmt: skip

    specs = fakes.fake_suite("smoke", [0], models=("fake-gru",))[:1]
    rec = records.RunRecord(id="0" * 16, spec=specs[0], code_version="1", status="ok",
                            metrics={"test_acc": 0.9}, throughput={"train_samples_per_s": 100.0})  # fmt: skip
    records.save_record(tmp_path / "base", rec)
    rec.throughput["train_samples_per_s"] = 50.0
    records.save_record(tmp_path / "cand", rec)
    assert "'/no/such/dir' is not a directory" in one_line_error(
        capsys, main(["compare", "--baseline", "/no/such/dir", "--candidate", str(tmp_path / "cand")]))  # fmt: skip
    assert main(["compare", "--baseline", str(tmp_path / "base"), "--candidate", str(tmp_path / "base")]) == 2
    capsys.readouterr()  # the candidate as its own only baseline: nothing to compare with
    assert main(["compare", "--baseline", str(tmp_path / "base"), "--candidate", str(tmp_path / "cand")]) == 1
    assert "REGRESSED" in capsys.readouterr().out
