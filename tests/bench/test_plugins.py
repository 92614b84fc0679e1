"""A model from outside the package, four ways (issue "Your model in the benchmark"): an
``--include`` file with the decorator, ``register_model(name, "module:Class")`` from a module of
one's own, a ``module:Class`` name never registered, and an installed distribution's entry point.
Each trains through the timescale suite's smoke profile on the real data and is in the report.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from cli_checks import assert_one_line_error

import bench
from bench import plugins
from bench.cli import main
from bench.models import get_model_entry, registry

GRU_SOURCE = textwrap.dedent('''
    import torch

    from bench import register_model


    class {cls}(torch.nn.Module):
        """a GRU of a user's, read out at the last step"""

        def __init__(self, num_inputs: int, num_classes: int, hidden_size: int = 8):
            super().__init__()
            self.gru = torch.nn.GRU(num_inputs, hidden_size, batch_first=True)
            self.head = torch.nn.Linear(hidden_size, num_classes)

        def forward(self, batch) -> torch.Tensor:
            outputs, _ = self.gru(batch.values)
            return self.head(outputs[:, -1])
''')


@pytest.fixture
def user_models(monkeypatch, tmp_path):
    """A private model registry and a folder on sys.path for the user's files."""
    monkeypatch.setattr(registry, "MODELS", registry.MODELS.copy())
    monkeypatch.setattr(plugins, "_INCLUDED", {})  # each test includes its files into its own registry
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / "timescale" / "records").glob("*.json"))]


def _check_in_the_report(results: Path, model: str) -> None:
    recs = [r for r in _records(results) if r["spec"]["model"] == model]
    assert len(recs) == 2 and all(r["status"] == "ok" for r in recs)  # the two shifts, seed 0
    table = (results / "timescale" / "table.md").read_text()
    assert f"| {model} " in table


def test_an_include_file_with_the_decorator_runs_in_worker_processes(user_models, tmp_path, data_dir, capsys):
    path = user_models / "tmp_gru_a.py"
    source = GRU_SOURCE.format(cls="TmpGRU").replace("class TmpGRU", '@register_model("tmp-gru-a")\nclass TmpGRU')
    path.write_text(source)
    results = tmp_path / "results"
    code = main(["run", "--suite", "timescale", "--profile", "smoke", "--include", str(path), "--models", "tmp-gru-a",
                 "--results-dir", str(results), "--data-dir", str(data_dir), "--executor", "processes",
                 "--workers", "2", "--set", "lr=0.003"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    _check_in_the_report(results, "tmp-gru-a")
    # --set is in each record's settings and identity, and in the report's settings table
    assert all(r["spec"]["train"]["lr"] == 0.003 and r["spec"]["provenance"]["overrides"] == {"lr": 0.003}
               for r in _records(results))  # fmt: skip
    assert "--set lr=0.003" in (results / "timescale" / "table.md").read_text()
    assert get_model_entry("tmp-gru-a").source == f"--include {path}"


def test_register_model_with_a_class_path_through_bench_run(user_models, tmp_path, data_dir):
    (user_models / "tmp_gru_b.py").write_text(GRU_SOURCE.format(cls="TmpGRUB"))
    bench.register_model("tmp-gru-b", "tmp_gru_b:TmpGRUB", "a user's GRU")
    result = bench.run("timescale", profile="smoke", models=["tmp-gru-b"], results_dir=tmp_path / "results",
                       data_dir=data_dir, interactive=False)  # fmt: skip
    assert not result.failed
    _check_in_the_report(tmp_path / "results", "tmp-gru-b")
    # no reference of its own: the family's defaults, said in the record and the settings table
    assert all(r["spec"]["provenance"] == {"settings": "no reference: family defaults"}
               for r in _records(tmp_path / "results"))  # fmt: skip


def test_a_class_path_never_registered(user_models, tmp_path, data_dir, capsys):
    (user_models / "tmp_gru_c.py").write_text(GRU_SOURCE.format(cls="TmpGRUC"))
    results = tmp_path / "results"
    code = main(["run", "--suite", "timescale", "--profile", "smoke", "--models", "tmp_gru_c:TmpGRUC",
                 "--results-dir", str(results), "--data-dir", str(data_dir)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    _check_in_the_report(results, "tmp_gru_c:TmpGRUC")
    assert get_model_entry("tmp_gru_c:TmpGRUC").source == "class path"


def test_an_installed_entry_point(user_models, tmp_path, data_dir, monkeypatch):
    (user_models / "tmp_gru_d.py").write_text(GRU_SOURCE.format(cls="TmpGRUD"))
    dist = user_models / "tmp_gru_dist-1.0.dist-info"  # what pip writes for an installed package
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tmp-gru-dist\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[hippo_bench.models]\ntmp-gru-d = tmp_gru_d:TmpGRUD\n")
    monkeypatch.setattr(registry.MODELS, "_discovered", False)  # look at the installed packages again
    assert get_model_entry("tmp-gru-d").source == "entry point (tmp-gru-dist)"
    result = bench.run("timescale", profile="smoke", models=["tmp-gru-d"], results_dir=tmp_path / "results",
                       data_dir=data_dir, interactive=False)  # fmt: skip
    assert not result.failed
    _check_in_the_report(tmp_path / "results", "tmp-gru-d")


def test_an_unknown_set_key_exits_2_naming_it(capsys):
    args = ["run", "--suite", "timescale", "--profile", "smoke", "--models", "lstm", "--set", "lrr=0.1"]
    assert_one_line_error(args, capsys, "'lrr'", "did you mean 'lr'")


def test_a_class_that_breaks_the_contract_is_refused_in_one_line(user_models, capsys):
    (user_models / "tmp_broken.py").write_text("import torch\n\nclass NoForward(torch.nn.Module):\n"
                                               "    def __init__(self, num_inputs, num_classes):\n"
                                               "        super().__init__()\n")  # fmt: skip
    args = ["run", "--suite", "timescale", "--profile", "smoke", "--models", "tmp_broken:NoForward"]
    assert_one_line_error(args, capsys, "NoForward", "forward")


def test_the_default_code_version_follows_the_source(user_models):
    source = GRU_SOURCE.format(cls="TmpGRUE")
    (user_models / "tmp_gru_e.py").write_text(source)
    (user_models / "tmp_gru_e_copy.py").write_text(source)
    (user_models / "tmp_gru_e_edited.py").write_text(source.replace("hidden_size: int = 8", "hidden_size: int = 9"))
    version = get_model_entry("tmp_gru_e:TmpGRUE").code_version()
    assert version.startswith("src-")
    assert get_model_entry("tmp_gru_e_copy:TmpGRUE").code_version() == version  # the same class source
    assert get_model_entry("tmp_gru_e_edited:TmpGRUE").code_version() != version  # edited: rerun, not reused


def test_the_readme_example_through_the_cli_in_workers_and_through_bench_run(user_models, tmp_path, data_dir, capsys):
    example = Path(__file__).resolve().parents[2] / "examples" / "my_gru.py"
    code = main(["run", "--suite", "timescale", "--profile", "smoke", "--include", str(example), "--models",
                 "my-gru", "--results-dir", str(tmp_path / "cli"), "--data-dir", str(data_dir),
                 "--executor", "processes", "--workers", "2"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    _check_in_the_report(tmp_path / "cli", "my-gru")
    result = bench.run("timescale", profile="smoke", models=["my-gru"], include=[example],
                       results_dir=tmp_path / "api", data_dir=data_dir, interactive=False)  # fmt: skip
    assert not result.failed and result.skipped == 0
    _check_in_the_report(tmp_path / "api", "my-gru")


def test_an_include_leaves_the_built_in_models_built_in(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "tmp_gru_g.py"
    path.write_text(GRU_SOURCE.format(cls="TmpGRUG").replace("class TmpGRUG", '@register_model("tmp-gru-g")\nclass TmpGRUG'))
    code = (f"from bench import plugins; plugins.include({str(path)!r}); from bench.models import get_model_entry as e; "
            "assert e('lstm').source == 'built-in', e('lstm').source; "
            f"assert e('tmp-gru-g').source == '--include {path}', e('tmp-gru-g').source; "
            "assert set(plugins.plugin_state()['models']) == set(), plugins.plugin_state()")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
