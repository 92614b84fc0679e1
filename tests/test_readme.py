"""The README's commands run as pasted: each ``python -m bench ...`` it shows is parsed by the
CLI, and each ``run`` builds its specs (suite, models, seeds, --include, --set, dataset) without
training anything. Its tables copied from a report equal the committed report."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from bench import api
from bench.cli import build_parser, executor_options, parse_overrides

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def readme_commands() -> list[str]:
    """Every ``python -m bench`` command in the README: inline code (which may wrap over lines)
    and lines of fenced blocks."""
    found = [" ".join(m.split()) for m in re.findall(r"`(python -m bench [^`]+)`", README)]
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            if "python -m bench " in line:
                found.append(line[line.index("python -m bench "):].split(" #")[0].strip())
    return list(dict.fromkeys(found))


def test_the_readme_shows_commands():
    commands = readme_commands()
    assert any(c.startswith("python -m bench run --suite timescale") for c in commands)
    assert any("--include examples/my_gru.py" in c for c in commands)
    assert not [c for c in commands if "|" in c], "a command with alternatives in it does not run as pasted"


@pytest.mark.parametrize("command", readme_commands())
def test_every_readme_command_parses_and_builds_its_runs(command, monkeypatch):
    from bench import plugins
    from bench.models import registry

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(registry, "MODELS", registry.MODELS.copy())  # --include registers models
    monkeypatch.setattr(plugins, "_INCLUDED", {})
    # the shell expands $(date +%F) before bench sees it
    args = build_parser().parse_args(shlex.split(command.replace("$(date +%F)", "2026-01-01"))[3:])
    if args.command == "run":
        specs, _ = api.prepare(args.suite, profile=args.profile, seeds=args.seeds, time=args.time,
                               models=args.models, device="cpu", executor=executor_options(args),
                               dataset=args.dataset, sample_rate=args.sample_rate, include=args.include,
                               overrides=parse_overrides(args.overrides))  # fmt: skip
        assert specs
    elif args.command == "report":
        api.include_files(args.include)
        assert (ROOT / args.results_dir / args.suite / "records").is_dir(), f"{command}: no records to report"


def _report_rows(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines() if line.startswith("| ")}


@pytest.mark.parametrize(("marker", "report"), [
    ("100Hz->200Hz honest", "results/paper/timescale/table.md"),
    ("30% missing honest", "results/missing/table.md"),
])  # fmt: skip
def test_readme_tables_copied_from_a_report_equal_it(marker, report):
    """A table pasted from ``bench report`` must still be the committed report's (rebuilt from
    the records by the test that checks the reports)."""
    start = README.rindex("\n", 0, README.index(marker)) + 1  # the header line holding the marker
    block = README[start:README.index("\n\n", start)]
    rows = _report_rows(ROOT / report)
    for line in block.splitlines():
        if not line.startswith("|-"):  # the rule under the header depends only on the widths
            assert line.strip() in rows, f"README row not in {report}: {line}"


@pytest.mark.parametrize(("results", "suite"), [("results/paper", "timescale"), ("results/paper", "timestamps"),
                                                ("results", "missing"), ("results", "timescale"),
                                                ("results", "funcapprox")])  # fmt: skip
def test_committed_reports_rebuild_unchanged_from_their_records(results, suite, monkeypatch):
    """``bench report`` on the committed records gives the committed tables (the README quotes
    them), so a table cannot drift from its records. Plots are not drawn here."""
    from bench import records, reports, suite_report

    written: dict[str, str] = {}
    monkeypatch.setattr(reports, "save_figure", lambda fig, folder, name: reports.plt.close(fig) or [])
    monkeypatch.setattr(records, "write_atomic", lambda path, text: written.setdefault(Path(path).name, text))
    folder = (ROOT / results).resolve()
    suite_report.write_report(folder, suite)
    committed = (records.suite_dir(folder, suite) / "table.md").read_text()
    assert written["table.md"] == committed
