"""The Python API (bench.run, bench.load_results, bench.report) and any UEA dataset in the suites."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cli_checks import assert_one_line_error
from toy_uea import write_toy_dataset

import bench
from bench.api import UsageError
from bench.cli import main

REPO_RESULTS = Path(__file__).resolve().parents[2] / "results"


@pytest.fixture
def toy_data(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    return write_toy_dataset(tmp_path / "data")


def test_timescale_on_another_uea_dataset_through_the_api(toy_data, tmp_path):
    result = bench.run("timescale", profile="smoke", models=["lstm", "hippo-legs"], dataset="uea:Toy",
                       data_dir=toy_data, results_dir=tmp_path / "results", device="cpu", interactive=False)  # fmt: skip
    assert len(result.records) == 4 and not result.failed
    assert {r.spec.condition for r in result.records} == {"0.5->1.0", "1.0->0.5"}  # no known rate: factors
    assert all(r.spec.dataset == "uea:Toy" and r.data_protocol["dataset"] == "Toy" for r in result.records)
    assert result.report_paths and "0.5->1.0" in result.report_paths[0].read_text()
    frame = bench.load_results(tmp_path / "results", "timescale")
    assert len(frame) == 4 and frame["test_acc"].dtype.kind == "f" and set(frame["model"]) == {"lstm", "hippo-legs"}
    assert {"train.batch_size", "model.hidden_size", "rate.0.5", "env.torch"} <= set(frame.columns)


def test_timescale_on_another_uea_dataset_through_the_cli(toy_data, tmp_path, capsys):
    results = tmp_path / "results"
    code = main(["run", "--suite", "timescale", "--profile", "smoke", "--models", "lstm", "--dataset", "uea:Toy",
                 "--sample-rate", "50", "--time", "physical", "--data-dir", str(toy_data),
                 "--results-dir", str(results), "--device", "cpu"])  # fmt: skip
    assert code == 0
    frame = bench.load_results(results)
    assert set(frame["condition"]) == {"25Hz->50Hz", "50Hz->25Hz"} and set(frame["data.time"]) == {"physical"}
    assert set(frame["data.sample_rate_hz"]) == {50}


@pytest.mark.parametrize(("args", "fragments"), [
    (["--dataset", "uea:Nope"], ["UEA dataset 'Nope' not found", "Nope_TRAIN.ts"]),
    (["--dataset", "pmnist"], ["needs a UEA dataset"]),
    (["--dataset", "uea:Toy", "--time", "physical"], ["no known sampling rate", "--sample-rate"]),
])  # fmt: skip
def test_bad_datasets_are_one_line(toy_data, tmp_path, capsys, args, fragments):
    base = ["run", "--suite", "timescale", "--profile", "smoke", "--models", "lstm", "--data-dir", str(toy_data),
            "--results-dir", str(tmp_path / "r"), "--device", "cpu"]  # fmt: skip
    assert_one_line_error(base + args, capsys, *fragments)


def test_a_suite_with_a_fixed_dataset_refuses_another():
    with pytest.raises(UsageError, match="fixed dataset"):
        bench.api.prepare("pmnist", profile="smoke", dataset="uea:Toy")


def test_load_results_reads_the_committed_records():
    folder = REPO_RESULTS / "timescale" / "records"
    everything = bench.load_results(REPO_RESULTS, "timescale", include_stale=True)
    assert len(everything) == len(list(folder.glob("*.json"))) > 0
    assert {"stale", "harness_version", "code_version"} <= set(everything.columns)
    frame = bench.load_results(REPO_RESULTS, "timescale")  # what the report uses
    assert 0 < len(frame) < len(everything)
    left_out = everything[~everything["id"].isin(frame["id"])]
    assert left_out["stale"].all()  # what the report does not use is stale
    # the reports' cells from an older model code (marked there) are stale too: the deep SSMs'
    assert set(frame["model"][frame["stale"]]) <= {"s4d", "s4d-lin", "lssl", "mamba"}
    assert frame["test_acc"].dtype.kind == "f" and frame["status"].eq("ok").all()


def test_the_readme_pandas_snippet_gives_the_readme_table():
    """The README's groupby over the committed quick records reproduces its quick table."""
    readme = (REPO_RESULTS.parent / "README.md").read_text()
    frame = bench.load_results(REPO_RESULTS, "timescale")
    means = frame[frame["data.time"] == "index"].groupby(["model", "condition"])["test_acc"].mean()
    section = readme[readme.index("### Timescale robustness (CharacterTrajectories), quick profile"):]
    rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in section.splitlines()[:40]
            if line.startswith("| hippo-") or line.startswith("| lstm")}  # fmt: skip
    assert rows, "the README's quick table was not found"
    for model, cells in rows.items():
        honest_100_200, honest_200_100 = cells[0].split("±")[0].strip(), cells[3].split("±")[0].strip()
        assert f"{100 * means[(model, '100Hz->200Hz')]:.1f}" == honest_100_200, model
        assert f"{100 * means[(model, '200Hz->100Hz')]:.1f}" == honest_200_100, model


def test_report_through_the_api(tmp_path):
    with pytest.raises(UsageError, match="no records for suite 'timescale'"):
        bench.report("timescale", results_dir=tmp_path)


def test_cli_runs_print_no_noise_a_user_cannot_act_on(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench", "ls", "models"], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0 and "s4d" in proc.stdout
    assert proc.stderr == "", proc.stderr[-2000:]


def test_sample_rate_is_refused_for_a_dataset_with_a_known_rate():
    with pytest.raises(UsageError, match="known sampling rate .200 Hz."):
        bench.api.prepare("timescale", profile="smoke", sample_rate=100.0)


def test_a_dirty_tree_writing_into_a_versioned_results_dir_warns_once(fakes, tmp_path, monkeypatch):
    import subprocess
    import warnings

    import torch

    from bench import api, environment
    from bench.records import BenchWarning

    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "-C", str(repo), "init", "-q"], check=True)
    (repo / ".gitignore").write_text("scratch/\n")
    specs = fakes.fake_suite("smoke", [0], models=("fake-gru",))[:1]

    def messages(results_dir, dirty: bool) -> list[str]:
        monkeypatch.setattr(environment, "git_state", lambda: {"commit": "abc", "dirty": dirty})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            api.run_specs(specs, torch.device("cpu"), results_dir=results_dir, interactive=False, write_report=False)
        return [str(w.message) for w in caught if issubclass(w.category, BenchWarning)]

    found = messages(repo / "results", dirty=True)
    assert len(found) == 1 and "uncommitted changes" in found[0] and "\n" not in found[0], found
    assert messages(repo / "results", dirty=False) == []  # a clean tree
    assert messages(repo / "scratch", dirty=True) == []  # ignored by git: not under version control
    assert messages(tmp_path / "elsewhere", dirty=True) == []  # not in a repository
