"""Run ids, record round trips and atomic writes."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest

from bench import records
from bench.records import RunRecord, RunSpec

SPEC = RunSpec(suite="s", task="classification", dataset="fake", condition="c", model="m", seed=0,
               profile="smoke", data={"train_hz": 0.5}, train={"epochs": 1}, model_args={"hidden_size": 8})  # fmt: skip


def test_run_id_is_stable_and_sensitive_to_spec_and_code_version():
    assert records.run_id(SPEC, "1") == records.run_id(RunSpec.from_dict(json.loads(json.dumps(SPEC.to_dict()))), "1")
    assert records.run_id(SPEC, "1") != records.run_id(SPEC, "2")
    assert records.run_id(SPEC, "1") != records.run_id(replace(SPEC, seed=1), "1")
    assert records.run_id(SPEC, "1") != records.run_id(replace(SPEC, train={"epochs": 2}), "1")
    assert len(records.run_id(SPEC, "1")) == 16


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
