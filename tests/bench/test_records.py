"""Run ids, record round trips and atomic writes."""

from __future__ import annotations

import json
import os
from dataclasses import fields, replace
from pathlib import Path

import pytest

from bench import records
from bench.records import RunRecord, RunSpec

REPO = Path(__file__).resolve().parents[2]
SPEC = RunSpec(suite="s", task="classification", dataset="fake", condition="c", model="m", seed=0,
               profile="smoke", data={"train_hz": 0.5}, train={"epochs": 1}, model_args={"hidden_size": 8})  # fmt: skip


def test_run_id_is_stable_and_sensitive_to_spec_and_code_version():
    assert records.run_id(SPEC, "1") == records.run_id(RunSpec.from_dict(json.loads(json.dumps(SPEC.to_dict()))), "1")
    assert records.run_id(SPEC, "1") != records.run_id(SPEC, "2")
    assert records.run_id(SPEC, "1") != records.run_id(replace(SPEC, seed=1), "1")
    assert records.run_id(SPEC, "1") != records.run_id(replace(SPEC, train={"epochs": 2}), "1")
    assert len(records.run_id(SPEC, "1")) == 16


def changed(value):
    """Another value of a spec field's type: a string, an int or a dict."""
    if isinstance(value, dict):
        return {**value, "added": 1}
    return value + 1 if isinstance(value, int) else f"{value}-other"


@pytest.mark.parametrize("name", [f.name for f in fields(RunSpec)])
def test_every_spec_field_joins_the_run_id(name):
    value = getattr(SPEC, name)
    assert records.run_id(replace(SPEC, **{name: changed(value)}), "1") != records.run_id(SPEC, "1")
    if isinstance(value, dict):  # a changed value inside it, too
        for key in value:
            other = replace(SPEC, **{name: {**value, key: changed(value[key])}})
            assert records.run_id(other, "1") != records.run_id(SPEC, "1"), (name, key)


def test_the_harness_version_joins_the_run_id_and_key_order_does_not(monkeypatch):
    before = records.run_id(SPEC, "1")
    monkeypatch.setattr(records, "HARNESS_VERSION", "next")
    assert records.run_id(SPEC, "1") != before
    monkeypatch.undo()
    assert records.run_id(SPEC, "1") == before
    shuffled = replace(SPEC, data={"b": 2, "a": 1}, train={"lr": 0.1, "epochs": 3})
    ordered = replace(SPEC, data={"a": 1, "b": 2}, train={"epochs": 3, "lr": 0.1})
    assert records.run_id(shuffled, "1") == records.run_id(ordered, "1")


def test_every_committed_record_is_named_by_its_spec_code_and_harness_version(monkeypatch):
    """The ids of results/ stay what they are: a change to how an id is computed would rerun
    (or orphan) every committed run."""
    paths = sorted(REPO.glob("results/**/records/*.json"))
    assert len(paths) > 100
    for path in paths:
        record = records.load_record(path)
        monkeypatch.setattr(records, "HARNESS_VERSION", record.harness_version)
        assert records.run_id(record.spec, record.code_version) == record.id == path.stem, path


def test_record_round_trip_and_nan_as_null(tmp_path):
    rec = RunRecord(id="abc", spec=SPEC, code_version="1", status="ok",
                    metrics={"test_acc": 0.5, "loss": float("nan")}, history=[{"epoch": 0}])  # fmt: skip
    path = records.save_record(tmp_path, rec)
    assert path == tmp_path / "s" / "records" / "abc.json"
    data = json.loads(path.read_text())  # strict JSON: NaN would not be valid
    assert data["metrics"]["loss"] is None and data["schema_version"] == records.SCHEMA_VERSION
    back = records.load_record(path)
    assert back.spec == SPEC and back.metrics["test_acc"] == 0.5 and back.history == [{"epoch": 0}]


def test_write_atomic_leaves_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    records.write_atomic(path, "old")

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        records.write_atomic(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left behind


def test_finished_record_only_counts_ok_and_readable(tmp_path):
    ok = RunRecord(id="a", spec=SPEC, code_version="1", status="ok")
    bad = RunRecord(id="b", spec=SPEC, code_version="1", status="failed", error="x")
    records.save_record(tmp_path, ok)
    records.save_record(tmp_path, bad)
    (tmp_path / "s" / "records" / "c.json").write_text("{not json")
    (tmp_path / "s" / "records" / ".d.json.123.tmp").write_text("{")
    assert records.finished_record(tmp_path, "s", "a").id == "a"
    assert records.finished_record(tmp_path, "s", "b") is None
    assert records.finished_record(tmp_path, "s", "c") is None
    assert records.finished_record(tmp_path, "s", "missing") is None
