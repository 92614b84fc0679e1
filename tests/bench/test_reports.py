"""Reports are built from the records alone: tables in the paper's layout and plots."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench import records
from bench.records import RunRecord, RunSpec
from bench.suite_report import NoRecordsError, write_report


def _ct_record(model, condition, seed, acc, time="index", status="ok", profile="quick"):
    spec = RunSpec(suite="timescale", task="classification", dataset="character-trajectories",
                   condition=condition, model=model, seed=seed, profile=profile,
                   data={"time": time}, train={"epochs": 1}, model_args={"hidden_size": 8})  # fmt: skip
    return RunRecord(
        id=records.run_id(spec, "1"), spec=spec, code_version="1", status=status,
        metrics={"test_acc": acc, "num_classes": 20} if status == "ok" else {},
        rate_curve={"0.5": acc / 2, "1.0": acc} if status == "ok" else {},
        throughput={"train_samples_per_s": 100.0 * (seed + 1)} if status == "ok" else {},
        finished_at=f"2025-01-01T00:00:0{seed}", error=None if status == "ok" else "boom",
    )  # fmt: skip


def test_classification_report_from_records(results_dir):
    for seed in (0, 1):
        for model, acc in (("hippo-legs", 0.9), ("lstm", 0.3)):
            for cond in ("100Hz->200Hz", "200Hz->100Hz"):
                records.save_record(results_dir, _ct_record(model, cond, seed, acc + 0.01 * seed))
    records.save_record(results_dir, _ct_record("gru", "100Hz->200Hz", 0, 0, status="failed"))
    records.save_record(results_dir, _ct_record("lstm", "100Hz->200Hz", 0, 0.99, profile="smoke"))  # other profile
    paths = write_report(results_dir, "timescale")
    names = {p.name for p in paths}
    assert {"table.md", "table.tex", "accuracy.png", "accuracy.pdf", "accuracy_vs_rate.png",
            "accuracy_vs_rate.pdf", "accuracy_vs_throughput.png"} <= names  # fmt: skip
    assert all(p.stat().st_size > 0 for p in paths)
    md = (results_dir / "timescale" / "table.md").read_text()
    assert "| hippo-legs" in md and "100Hz->200Hz" in md and "200Hz->100Hz" in md
    assert "**90.5 ± 0.7 (2)**" in md and "30.5 ± 0.7 (2)" in md  # best in bold, n = 2 seeds
    assert "Chance level: 5.0% (20 classes)" in md and "index" in md and "quick" in md
    assert "Failed runs (not in the table): 1" in md
    tex = (results_dir / "timescale" / "table.tex").read_text()
    assert r"\textbf{90.5 $\pm$ 0.7 (2)}" in tex and r"$\to$" in tex and tex.split(r"\end{table}")[0].count(r"\\") == 3
    assert "99" not in md  # the smoke record is another profile
    assert "99.0" in (write_report(results_dir, "timescale", "smoke")[0]).read_text()


def test_report_says_when_a_profile_tested_on_part_of_the_test_set(results_dir):
    for seed, seen in ((0, 2000), (1, 2000)):
        rec = _ct_record("lstm", "pMNIST", seed, 0.5)
        rec.metrics["test_examples"], rec.data_protocol = seen, {"split_sizes": {"test": 10000}}
        records.save_record(results_dir, rec)
    full = _ct_record("gru", "pMNIST", 0, 0.6)
    full.metrics["test_examples"], full.data_protocol = 10000, {"split_sizes": {"test": 10000}}
    records.save_record(results_dir, full)
    md = write_report(results_dir, "timescale")[0].read_text()
    assert "Test accuracy of 2 run(s) on the first 2000 of 10000 test examples only" in md
    for seed in (0, 1):  # only the run on the whole test set is left
        (results_dir / "timescale" / "records" / f"{_ct_record('lstm', 'pMNIST', seed, 0.5).id}.json").unlink()
    assert "test examples only" not in write_report(results_dir, "timescale")[0].read_text()


def test_training_rate_table_reads_the_rate_curve_at_the_training_rate(results_dir):
    for seed, at_train in ((0, 0.80), (1, 0.82)):
        rec = _ct_record("lstm", "100Hz->200Hz", seed, 0.2)
        rec.spec.data["train_hz"] = 0.5
        rec.rate_curve = {"0.25": 0.1, "0.5": at_train, "1.0": 0.2}
        rec.id = records.run_id(rec.spec, "1")
        records.save_record(results_dir, rec)
    md = write_report(results_dir, "timescale")[0].read_text()
    shifted, same_rate = md.split("TRAINING rate")
    assert "20.0 ± 0.0 (2)" in shifted  # test accuracy at the evaluation rate
    assert "81.0 ± 1.4 (2)" in same_rate  # the curve's value at train_hz = 0.5


def test_a_cell_shows_one_setting_not_records_of_other_hyperparameters(results_dir):
    old = _ct_record("lstm", "100Hz->200Hz", 0, 0.9)
    new = _ct_record("lstm", "100Hz->200Hz", 0, 0.3)
    new.spec.model_args["hidden_size"] = 64  # another setting, finished later
    new.id, new.finished_at = records.run_id(new.spec, "1"), "2025-01-02T00:00:00"
    records.save_record(results_dir, old)
    records.save_record(results_dir, new)
    md = write_report(results_dir, "timescale")[0].read_text()
    assert "30.0 (1)" in md and "(2)" not in md and "± 0.0" not in md  # n = 1: no spread claimed


def test_a_cell_never_averages_two_code_versions(results_dir):
    old = _ct_record("ncde", "100Hz->200Hz", 0, 0.9)  # seed 0 by the model's previous code
    new = _ct_record("ncde", "100Hz->200Hz", 1, 0.3)
    new.code_version, new.id = "2", records.run_id(new.spec, "2")
    records.save_record(results_dir, old)
    records.save_record(results_dir, new)
    md = write_report(results_dir, "timescale")[0].read_text()
    assert "30.0 (1)" in md and "(2)" not in md  # seed 0 waits for its rerun with code 2
    # the ncde code of this checkout is not 2 either: the table says its records are older
    assert ("Ran on an older version of the model or harness: ncde, 1 of 1 runs (100Hz->200Hz: code 2, "
            "harness 2; now code 3") in md


def test_report_labels_time_modes_when_both_are_present(results_dir):
    records.save_record(results_dir, _ct_record("lstm", "100Hz->200Hz", 0, 0.4))
    records.save_record(results_dir, _ct_record("lstm", "100Hz->200Hz", 0, 0.5, time="physical"))
    md = write_report(results_dir, "timescale")[0].read_text()
    assert "100Hz->200Hz (index time)" in md and "100Hz->200Hz (physical time)" in md


def test_funcapprox_and_throughput_reports(results_dir):
    for measure, base in (("legs", 1e-3), ("legt", 1e-2)):
        for n in (8, 16):
            spec = RunSpec(suite="funcapprox", task="funcapprox", dataset=None, condition=f"N={n}",
                           model=measure, seed=0, profile="smoke", model_args={"N": n, "length": 100})  # fmt: skip
            records.save_record(results_dir, RunRecord(
                id=records.run_id(spec, "1"), spec=spec, code_version="1", status="ok",
                metrics={"mse": base / n, "steps_per_s": 1000.0}))  # fmt: skip
    paths = write_report(results_dir, "funcapprox")
    md = paths[0].read_text()
    assert "| legs" in md and "N=8" in md and "N=16" in md and "**" in md
    assert {"mse_vs_n.png", "mse_vs_n.pdf"} <= {p.name for p in paths}

    for model in ("lstm", "hippo-legs"):
        spec = RunSpec(suite="throughput", task="throughput", dataset="character-trajectories",
                       condition="batch 16", model=model, seed=0, profile="smoke")  # fmt: skip
        tp = {"train_samples_per_s": 10.0, "infer_samples_per_s": 50.0, "train_steps_per_s": 1820.0,
              "infer_steps_per_s": 9100.0, "peak_memory_bytes": None, "peak_rss_bytes": 2**30}  # fmt: skip
        records.save_record(results_dir, RunRecord(id=records.run_id(spec, "1"), spec=spec, code_version="1",
                                                   status="ok", throughput=tp))  # fmt: skip
    paths = write_report(results_dir, "throughput")
    md = paths[0].read_text()
    assert "train_samples_per_s" in md and "peak memory (MiB)" in md and "1024.0" in md
    assert {"throughput.png", "throughput.pdf"} <= {p.name for p in paths}


def test_report_without_records_says_so(results_dir):
    with pytest.raises(NoRecordsError, match="no records for suite 'timescale'"):
        write_report(results_dir, "timescale")


def test_the_caption_describes_the_profile_only_for_records_that_follow_it(results_dir):
    from dataclasses import replace

    from bench.suites import build_suite

    spec = build_suite("timescale", "quick", seeds=[0], models=["lstm"])[0]
    rec = _ct_record("lstm", spec.condition, 0, 0.5)
    rec.spec = spec
    rec.id = records.run_id(spec, "1")
    records.save_record(results_dir, rec)
    md = write_report(results_dir, "timescale")[0].read_text()
    assert "8 epochs and widths capped at 64" in md and "not this version's" not in md
    other = replace(spec, seed=1, train={**spec.train, "lr": 0.1})
    rec.spec, rec.id, rec.finished_at = other, records.run_id(other, "1"), "2025-01-02T00:00:00"
    records.save_record(results_dir, rec)
    md = write_report(results_dir, "timescale")[0].read_text()
    assert "not this version's quick definition" in md


def test_paper_records_are_shown_beside_the_published_numbers(results_dir):
    from bench.models import get_model_entry

    for seed in (0, 1):
        for cond in ("100Hz->200Hz", "200Hz->100Hz"):
            rec = _ct_record("hippo-legs", cond, seed, 0.80 + 0.02 * seed, profile="paper")
            rec.spec.data["train_hz"] = 0.5 if cond == "100Hz->200Hz" else 1.0
            rec.metrics.update(test_acc_eval_selected=0.88 + 0.02 * seed)
            rec.code_version = get_model_entry("hippo-legs").code_version()
            rec.id, rec.train_seconds = records.run_id(rec.spec, rec.code_version), 600.0
            records.save_record(results_dir, rec)
    old = _ct_record("lstm", "100Hz->200Hz", 0, 0.25, profile="paper")  # code 0: older than the LSTM's
    old.code_version, old.id = "0", records.run_id(old.spec, "0")
    records.save_record(results_dir, old)
    records.save_record(results_dir, _ct_record("gru", "100Hz->200Hz", 0, 0.7, profile="paper"))
    physical = _ct_record("hippo-legs", "100Hz->200Hz", 0, 0.1, time="physical", profile="paper")
    records.save_record(results_dir, physical)  # the paper's clock is index time: not averaged in
    md = write_report(results_dir, "timescale")[0].read_text()
    side = md[md.index("side by side with the published numbers"):md.index("Settings of each model")]
    lines = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
             for line in side.splitlines() if line.startswith("| ") and not line.startswith("| model")}
    # per shift: honest, reference, paper, verdict; then the training rate (1.0 from the fakes'
    # curve) and time
    assert lines["hippo-legs"] == ["81.0 ± 1.4 (2)", "89.0 ± 1.4 (2)", "88.8", "reproduced", "81.0 ± 1.4 (2)",
                                   "89.0 ± 1.4 (2)", "90.1", "reproduced",
                                   "40.5 ± 0.7 (2) / 81.0 ± 1.4 (2)", "40.0 min"]  # fmt: skip
    # an older code's cell is marked
    assert lines["lstm"][:8] == ["25.0 (1) †", "–", "25.4", "reproduced", "–", "–", "64.6", "–"]
    assert lines["gru"][2] == lines["gru"][6] == "–"  # not in the paper's table
    assert "† ran on an older code version" in side
    assert r"25.0 (1) $\dagger$" in (results_dir / "timescale" / "table.tex").read_text()
    # nothing older than its code: no dagger, no note
    (results_dir / "timescale" / "records" / f"{old.id}.json").unlink()
    side = write_report(results_dir, "timescale")[0].read_text().split("side by side")[1]
    assert "†" not in side and "88.8" in side
    # a quick run is not a reproduction: no side-by-side table for other profiles
    records.save_record(results_dir, _ct_record("hippo-legs", "100Hz->200Hz", 0, 0.8))
    assert "side by side" not in write_report(results_dir, "timescale", "quick")[0].read_text()


def _git_repo(path):
    import subprocess

    def git(*args):
        return subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, check=True).stdout.strip()

    path.mkdir(parents=True)
    git("init", "-q")
    (path / "README").write_text("x")
    git("add", "README")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    return git("rev-parse", "HEAD")


def test_dirty_and_foreign_commit_records_are_marked_in_every_table(tmp_path):
    from bench.models import get_model_entry

    results_dir = tmp_path / "repo" / "results"
    head = _git_repo(tmp_path / "repo")
    envs = {"lstm": {"git_commit": head, "git_dirty": False},  # clean and in the history: no mark
            "gru": {"git_commit": head, "git_dirty": True},  # a modified tree
            "hippo-legs": {"git_commit": "8972413" + "0" * 33, "git_dirty": False}}  # not in the history
    for model, env in envs.items():
        for seed in (0, 1):
            rec = _ct_record(model, "100Hz->200Hz", seed, 0.5)
            rec.spec = replace(rec.spec, data={"time": "index", "train_hz": 1.0})  # and a training-rate table
            rec.code_version = get_model_entry(model).code_version()  # current: no †
            rec.id = records.run_id(rec.spec, rec.code_version)
            rec.environment = env
            records.save_record(results_dir, rec)
    md = write_report(results_dir, "timescale")[0].read_text()
    honest = md[:md.index("TRAINING rate")]
    rows = {line.split("|")[1].strip(): line for line in honest.splitlines() if line.startswith("| ")}
    assert "‡" not in rows["lstm"] and "§" not in rows["lstm"] and "†" not in rows["lstm"]
    assert "50.0 ± 0.0 (2) ‡" in rows["gru"] and "50.0 ± 0.0 (2) §" in rows["hippo-legs"]
    assert md.count("Marks: ‡ made from a modified working tree") >= 2
    assert "§ its commit is not an ancestor of HEAD" in md and "Commits not checked" not in md
    tex = (results_dir / "timescale" / "table.tex").read_text()
    assert r"$\ddagger$" in tex and r"\S{}" in tex


def test_funcapprox_records_of_an_older_harness_or_dirty_tree_are_marked(results_dir):
    from hippo.funcapprox import CODE_VERSION

    for n, (version, harness, dirty) in {8: (CODE_VERSION, records.HARNESS_VERSION, False),
                                         16: (CODE_VERSION, "1", True)}.items():  # fmt: skip
        spec = RunSpec(suite="funcapprox", task="funcapprox", dataset=None, condition=f"N={n}",
                       model="legs", seed=0, profile="smoke", model_args={"N": n, "length": 100})  # fmt: skip
        records.save_record(results_dir, RunRecord(
            id=records.run_id(spec, version), spec=spec, code_version=version, status="ok", harness_version=harness,
            metrics={"mse": 1e-3 / n, "steps_per_s": 1000.0}, environment={"git_commit": "abc", "git_dirty": dirty}))  # fmt: skip
    md = write_report(results_dir, "funcapprox")[0].read_text()
    mse = md[:md.index("online update speed")]
    row = next(line for line in mse.splitlines() if line.startswith("| legs"))
    n8, n16 = (c.strip() for c in row.split("|")[2:4])
    assert n8 == "**0.000125 (1)**" and n16 == "**6.25e-05 (1) †‡**", row  # N=8 is current and clean
    assert md.count("Marks: † ran on an older code version") == 2  # under both tables
    assert "Commits not checked against HEAD" in md  # the results dir is not in a git repository
