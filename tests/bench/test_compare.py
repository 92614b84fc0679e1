"""Regression detection across runs (bench.compare): records written here, several nightlies."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from bench import compare
from bench.compare import CompareError, CompareOptions, compare_dirs, history_dirs, main
from bench.records import RunRecord, RunSpec, run_id, save_record

H100 = {"device_name": "NVIDIA H100 80GB HBM3", "torch": "2.14.1", "cuda": "12.8", "host": "gpu-1"}
A100 = {**H100, "device_name": "NVIDIA A100-SXM4-40GB"}
MODELS = ("hippo-legs", "lstm", "gru")
SEEDS = (0, 1, 2)
BASE = {"hippo-legs": (0.95, 2000.0), "lstm": (0.90, 4000.0), "gru": (0.92, 5000.0)}  # acc, samples/s


def make_record(model: str, seed: int, acc: float, samples_per_s: float, *, memory: int | None = 100 * 2**20,
                condition: str = "100Hz", suite: str = "uea", env: dict | None = None, status: str = "ok") -> RunRecord:  # fmt: skip
    spec = RunSpec(suite=suite, task="classification", dataset="CharacterTrajectories", condition=condition,
                   model=model, seed=seed, profile="paper", data={"train_hz": 1.0}, train={"epochs": 10},
                   model_args={"hidden_size": 32})  # fmt: skip
    return RunRecord(
        id=run_id(spec, "1"), spec=spec, code_version="1", status=status,
        error=None if status == "ok" else "RuntimeError: CUDA out of memory\ntraceback...",
        metrics={"test_acc": acc} if status == "ok" else {},
        throughput={"train_samples_per_s": samples_per_s, "infer_samples_per_s": 3 * samples_per_s},
        peak_memory_bytes=memory, environment=dict(env or H100), finished_at="2026-11-20T00:00:00",
    )  # fmt: skip


def write_nightly(root: Path, name: str, rng: random.Random, *, acc_drop: dict | None = None,
                  slowdown: dict | None = None, models=MODELS, env: dict | None = None,
                  memory_factor: float = 1.0) -> Path:  # fmt: skip
    """One nightly results dir: every model x seed with seed noise (±0.4 pp) and 3% throughput jitter."""
    out = root / name
    for model in models:
        acc, speed = BASE[model]
        for seed in SEEDS:
            a = acc + rng.uniform(-0.004, 0.004) - (acc_drop or {}).get(model, 0.0)
            s = speed * rng.uniform(0.97, 1.03) / (slowdown or {}).get(model, 1.0)
            save_record(out, make_record(model, seed, a, s, memory=int(100 * 2**20 * memory_factor), env=env))
    return out


@pytest.fixture
def history(tmp_path):
    rng = random.Random(0)
    return [write_nightly(tmp_path, f"2026-11-{d:02d}", rng) for d in (10, 11, 12, 13, 14)]


def _regressed(report, kind=None):
    return {(f.model, f.metric) for f in report.regressions() if kind is None or f.kind == kind}


def test_noise_alone_is_not_flagged(tmp_path, history):
    for trial in range(5):
        cand = write_nightly(tmp_path, f"cand{trial}", random.Random(100 + trial))
        report = compare_dirs(history, cand)
        assert report.regressions() == [] and report.improvements() == [], report.to_markdown()
        assert report.exit_code() == 0
        assert len(report.findings) == len(MODELS) * 4  # test_acc, train and infer samples/s, memory


def test_injected_slowdown_and_accuracy_drop_are_flagged(tmp_path, history):
    cand = write_nightly(tmp_path, "cand", random.Random(1), slowdown={"lstm": 1.25},
                         acc_drop={"gru": 0.03})  # fmt: skip  # 20% fewer samples/s, -3 pp
    report = compare_dirs(history, cand)
    assert _regressed(report, "throughput") == {("lstm", "train_samples_per_s"), ("lstm", "infer_samples_per_s")}
    assert _regressed(report, "accuracy") == {("gru", "test_acc")}
    drop = next(f for f in report.regressions("accuracy"))
    assert drop.change == pytest.approx(-0.03, abs=0.006) and drop.threshold >= 0.005
    assert drop.baseline_dirs == 5 and drop.candidate_runs == 3 and drop.baseline_runs == 15
    slow = next(f for f in report.regressions("throughput") if f.metric == "train_samples_per_s")
    assert slow.change == pytest.approx(0.8, abs=0.04) and slow.threshold == 1.1
    md = report.to_markdown()
    assert "REGRESSED: 3 regression(s)" in md and "### Regressions" in md
    assert "| throughput | uea | lstm | 100Hz | train_samples_per_s |" in md
    assert "| accuracy | uea | gru | 100Hz | test_acc |" in md and compare.format_change(drop)[0].startswith("-")
    assert f"| {compare.format_change(drop)[0]} | ±" in md and f"| {compare.format_change(slow)[0]} | ×1.1 |" in md


def test_history_median_ignores_one_odd_nightly(tmp_path):
    rng = random.Random(3)
    nights = [write_nightly(tmp_path, f"n{i}", rng) for i in range(4)]
    nights.append(write_nightly(tmp_path, "n4-odd", rng, slowdown={"lstm": 0.5}, acc_drop={"lstm": -0.05}))
    cand = write_nightly(tmp_path, "cand", rng)
    assert compare_dirs(nights, cand).regressions() == []
    # Against the odd night alone the candidate looks like a regression.
    assert _regressed(compare_dirs([nights[-1]], cand)) >= {("lstm", "test_acc"), ("lstm", "train_samples_per_s")}


def test_improvements_reported_but_never_fail(tmp_path, history):
    cand = write_nightly(tmp_path, "cand", random.Random(2), slowdown={"gru": 0.7}, memory_factor=0.5)
    report = compare_dirs(history, cand)
    assert report.regressions() == [] and report.exit_code() == 0
    assert {("gru", "train_samples_per_s"), ("hippo-legs", "peak_memory_bytes")} <= {
        (f.model, f.metric) for f in report.improvements()
    }
    assert "### Improvements" in report.to_markdown()


def test_memory_regression_is_its_own_kind(tmp_path, history):
    cand = write_nightly(tmp_path, "cand", random.Random(4), memory_factor=1.3)
    report = compare_dirs(history, cand)
    assert {f.kind for f in report.regressions()} == {"memory"}
    assert report.exit_code(("throughput",)) == 0 and report.exit_code(("memory",)) == 1


def test_single_seed_uses_accuracy_floor(tmp_path):
    base, cand = tmp_path / "b", tmp_path / "c"
    save_record(base, make_record("lstm", 0, 0.900, 1000.0))
    save_record(cand, make_record("lstm", 0, 0.897, 1000.0))  # -0.3 pp, no variance estimate
    (finding,) = [f for f in compare_dirs([base], cand).findings if f.kind == "accuracy"]
    assert finding.threshold == 0.005 and not finding.regressed
    save_record(cand, make_record("lstm", 0, 0.890, 1000.0))  # -1 pp: beyond the floor
    assert _regressed(compare_dirs([base], cand)) == {("lstm", "test_acc")}
    options = CompareOptions(accuracy_floor=0.02)
    assert compare_dirs([base], cand, options).regressions() == []


def test_funcapprox_mse_increase_is_an_accuracy_regression(tmp_path):
    def night(name, mse, steps_per_s):
        out = tmp_path / name
        for seed in SEEDS:
            spec = RunSpec(suite="funcapprox", task="funcapprox", dataset=None, condition="N=64",
                           model="legs", seed=seed, profile="paper", model_args={"N": 64})  # fmt: skip
            save_record(out, RunRecord(id=run_id(spec, "1"), spec=spec, code_version="1", status="ok",
                                       metrics={"mse": mse * (1 + seed / 100), "steps_per_s": steps_per_s},
                                       environment=dict(H100), finished_at="2026-11-20T00:00:00"))  # fmt: skip
        return out

    base = [night(f"n{i}", 1e-6, 1e6) for i in range(3)]
    same = compare_dirs(base, night("same", 1e-6, 1e6))
    assert {f.metric for f in same.findings} == {"mse", "steps_per_s"} and same.regressions() == []
    worse = compare_dirs(base, night("worse", 3e-6, 1e6))
    (finding,) = worse.regressions()
    assert (finding.kind, finding.metric) == ("accuracy", "mse") and finding.change == pytest.approx(3.0)
    assert "| accuracy | funcapprox | legs | N=64 | mse | 1.01e-06 | 3.03e-06 | ×3.000 (+200.0%) | ×1.1 |" \
        in worse.to_markdown()
    assert compare_dirs(base, night("better", 1e-7, 1e6)).improvements()[0].metric == "mse"


def test_one_sided_runs_listed_not_errors(tmp_path, history):
    cand = write_nightly(tmp_path, "cand", random.Random(5), models=("hippo-legs", "lstm"))
    save_record(cand, make_record("hippo-legs", 0, 0.9, 1000.0, condition="50Hz"))  # new condition
    report = compare_dirs(history, cand)
    assert report.exit_code() == 0
    assert [(r.model, r.condition, r.seeds) for r in report.only_candidate] == [("hippo-legs", "50Hz", (0,))]
    assert [(r.model, r.seeds) for r in report.only_baseline] == [("gru", SEEDS)]
    md = report.to_markdown()
    assert "### Only in candidate" in md and "### Only in baseline" in md and "in 5 of 5 baseline dirs" in md


def test_different_machine_compares_accuracy_only(tmp_path, history):
    cand = write_nightly(tmp_path, "cand", random.Random(6), env=A100, slowdown={"lstm": 2.0})
    report = compare_dirs(history, cand)
    # accuracy does not depend on the machine: compared; the 2x slowdown is not (another GPU)
    assert {(f.kind, f.metric) for f in report.findings} == {("accuracy", "test_acc")}
    assert len(report.findings) == len(MODELS) and report.exit_code() == 0
    assert {f.baseline_dirs for f in report.findings} == {5} and "vs other machines" in report.findings[0].machine
    assert sorted(n.model for n in report.not_comparable) == sorted(MODELS)
    assert report.only_candidate == [] and report.only_baseline == []
    assert "A100" in report.not_comparable[0].candidate_machine
    assert "H100" in report.not_comparable[0].baseline_machines[0]
    md = report.to_markdown()
    assert "### Not comparable for throughput and memory" in md and "accuracy compared, throughput and memory skipped" in md
    # an accuracy drop on another machine is still a regression
    worse = write_nightly(tmp_path, "worse", random.Random(6), env=A100, acc_drop={"gru": 0.03})
    assert _regressed(compare_dirs(history, worse)) == {("gru", "test_acc")}
    # A different torch or CUDA version is a different machine kind too.
    cuda13 = write_nightly(tmp_path, "cuda13", random.Random(6), env={**H100, "cuda": "13.0"})
    assert {f.kind for f in compare_dirs(history, cuda13).findings} == {"accuracy"}


def test_a_comparison_of_nothing_says_so_first_and_fails(tmp_path, history, capsys):
    """Throughput-only runs on another machine, or no spec in common: 0 metrics compared must not
    read as "No regressions", and fails the exit code unless --fail-on none."""
    base, cand = tmp_path / "base", tmp_path / "cand"
    for out, env in ((base, H100), (cand, A100)):
        rec = make_record("lstm", 0, 0.9, 1000.0, env=env)
        rec.metrics = {}  # a throughput run: no accuracy
        save_record(out, rec)
    report = compare_dirs([base], cand)
    first = report.to_markdown().split("\n")[2]
    assert first.startswith("**Nothing compared: 0 metrics**") and "other machines" in first, first
    assert "throughput and memory are skipped" in first and "No regressions" not in report.to_markdown()
    assert report.exit_code() == 1 and report.exit_code(()) == 0
    argv = ["--baseline", str(base), "--candidate", str(cand)]
    assert main(argv) == 1 and main(argv + ["--fail-on", "none"]) == 0
    assert "does not fail: fail-on is none" in capsys.readouterr().out
    other = write_nightly(tmp_path, "other", random.Random(1), models=("gru",))
    lone = compare_dirs([other], write_nightly(tmp_path, "lone", random.Random(2), models=("lstm",)))
    assert "no spec in common" in lone.to_markdown().split("\n")[2] and lone.exit_code() == 1


def test_mixed_history_uses_same_machine_nights_only(tmp_path, history):
    odd = write_nightly(tmp_path, "a100", random.Random(7), env=A100, slowdown={"lstm": 3.0})
    cand = write_nightly(tmp_path, "cand", random.Random(8))
    report = compare_dirs([*history, odd], cand)
    assert report.regressions() == [] and report.not_comparable == []
    assert {f.baseline_dirs for f in report.findings} == {5}
    # Candidate runs on two machine kinds: the one without a baseline is listed, not dropped.
    for seed in SEEDS:  # (same spec, same id: a second file name keeps both)
        other = make_record("lstm", seed, 0.5, 10.0, env={**H100, "torch": "2.15.0"})
        other.id += "-torch215"
        save_record(cand, other)
    report = compare_dirs(history, cand)
    assert [(n.model, n.candidate_machine) for n in report.not_comparable] == [
        ("lstm", "NVIDIA H100 80GB HBM3, torch 2.15.0, CUDA 12.8")
    ]
    assert len(report.findings) == len(MODELS) * 4 + 1 and report.only_candidate == []
    extra = [f for f in report.findings if "torch 2.15.0" in f.machine]  # its accuracy only, across machines
    assert [(f.model, f.metric, f.regressed) for f in extra] == [("lstm", "test_acc", True)]


def test_failed_runs_listed_and_latest_record_wins(tmp_path, history):
    cand = write_nightly(tmp_path, "cand", random.Random(9))
    save_record(cand, make_record("lmu", 0, 0.0, 1.0, status="failed"))
    stale = make_record("lstm", 0, 0.10, 1000.0)  # an older record of the same spec and seed
    stale.id, stale.finished_at = "0000000000000000", "2026-01-01T00:00:00"
    save_record(cand, stale)
    (cand / "uea" / "records" / "broken.json").write_text("{not json")
    report = compare_dirs(history, cand)
    assert report.regressions() == []
    assert [(r.model, r.note) for r in report.failed] == [("lmu", "failed: RuntimeError: CUDA out of memory")]
    assert any("broken.json" in n for n in report.notes)
    assert "### Failed in candidate" in report.to_markdown()


def test_suite_dir_accepted_and_suites_filter(tmp_path, history):
    cand = write_nightly(tmp_path, "cand", random.Random(10), slowdown={"lstm": 1.25})
    report = compare_dirs([h / "uea" for h in history], cand / "uea")
    assert _regressed(report) == {("lstm", "train_samples_per_s"), ("lstm", "infer_samples_per_s")}
    other = compare_dirs(history, cand, CompareOptions(suites=("mnist",)))
    assert other.findings == [] and other.only_baseline == []


@pytest.mark.parametrize(
    ("fail_on", "expected"),
    [(None, 1), ("accuracy", 1), ("throughput", 1), ("memory", 0), ("accuracy,throughput", 1),
     ("none", 0), ("all", 1)],
)  # fmt: skip
def test_exit_codes_with_fail_on(tmp_path, history, capsys, fail_on, expected):
    cand = write_nightly(tmp_path, "cand", random.Random(11), slowdown={"lstm": 1.25}, acc_drop={"gru": 0.03})
    argv = ["--baseline", *map(str, history), "--candidate", str(cand)]
    assert main(argv + ([] if fail_on is None else ["--fail-on", fail_on])) == expected
    assert "REGRESSED" in capsys.readouterr().out or expected == 0


def test_exit_code_per_kind(tmp_path, history):
    slow = write_nightly(tmp_path, "slow", random.Random(12), slowdown={"lstm": 1.25})
    args = ["--baseline", *map(str, history), "--candidate", str(slow)]
    assert main(args + ["--fail-on", "accuracy"]) == 0
    assert main(args + ["--fail-on", "throughput"]) == 1
    assert main(args + ["--factor", "1.5"]) == 0  # a 20% slowdown is within a factor of 1.5
    worse = write_nightly(tmp_path, "worse", random.Random(13), acc_drop={"gru": 0.03})
    args = ["--baseline", *map(str, history), "--candidate", str(worse)]
    assert main(args + ["--fail-on", "throughput,memory"]) == 0
    assert main(args + ["--fail-on", "accuracy"]) == 1
    assert main(args + ["--accuracy-floor", "5"]) == 0  # 3 pp is under a 5 pp floor


def test_cli_writes_markdown_and_json(tmp_path, history, capsys):
    cand = write_nightly(tmp_path, "cand", random.Random(14), acc_drop={"gru": 0.03})
    md, js = tmp_path / "out" / "summary.md", tmp_path / "out" / "compare.json"
    assert main(["--baseline", *map(str, history), "--candidate", str(cand), "--output", str(md),
                 "--json", str(js)]) == 1  # fmt: skip
    assert md.read_text() == capsys.readouterr().out
    data = json.loads(js.read_text())
    assert [(f["model"], f["kind"]) for f in data["findings"] if f["regressed"]] == [("gru", "accuracy")]


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--baseline", "{tmp}/missing", "--candidate", "{cand}"], "is not a directory"),
     (["--baseline", "{tmp}/empty", "--candidate", "{cand}"], "no run records in"),
     (["--baseline", "{cand}", "--candidate", "{cand}"], "no baseline directory"),
     (["--baseline", "{cand}", "--candidate", "{cand}", "--factor", "0.9"], "factor must be")],
)  # fmt: skip
def test_bad_input_is_one_line_error(tmp_path, capsys, argv, message):
    cand = write_nightly(tmp_path, "cand", random.Random(15), models=("lstm",))
    (tmp_path / "empty").mkdir()
    code = main([a.format(tmp=tmp_path, cand=cand) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("bench: error: ") and message in err and err.count("\n") == 1


def test_compare_error_is_value_error_and_bad_fail_on_is_usage_error(capsys):
    assert issubclass(CompareError, ValueError)
    with pytest.raises(SystemExit) as exc:
        main(["--baseline", "a", "--candidate", "b", "--fail-on", "speed"])
    assert exc.value.code == 2 and "unknown kind speed" in capsys.readouterr().err


def test_history_dirs(tmp_path, history):
    (tmp_path / "2026-11-15").mkdir()  # a night that crashed before writing records
    (tmp_path / ".worktree").mkdir()
    (tmp_path / "summary.md").write_text("x")
    assert history_dirs(tmp_path, exclude=history[-1], keep=3) == history[1:4]
    assert history_dirs(tmp_path / "nothing") == []
    assert history_dirs(tmp_path, keep=0) == []


def test_pooled_std():
    assert compare.pooled_std([[1.0], [2.0]]) == 0.0
    assert compare.pooled_std([[1.0, 3.0], [5.0, 7.0]]) == pytest.approx(2**0.5)


def test_a_copy_of_another_conditions_run_is_compared_once(tmp_path):
    from bench.compare import load_runs

    source = make_record("lstm", 0, 0.8, 100.0, condition="ts 0.5->1.0")
    copy = make_record("lstm", 0, 0.8, 100.0, condition="ts 1.0->0.5")
    copy.reused_from = source.id
    save_record(tmp_path, source)
    save_record(tmp_path, copy)
    runs = load_runs(tmp_path)
    assert [g.condition for g in runs.groups.values()] == ["ts 0.5->1.0"]
