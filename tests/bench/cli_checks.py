"""The CLI's bad-input contract, checked in-process (a subprocess per case costs ~10 s of imports)."""

from __future__ import annotations

from bench.cli import main


def assert_one_line_error(args: list[str], capsys, *fragments: str) -> str:
    """``main(args)`` exits 2 with one line ``bench: error: ...`` on stderr, no traceback, naming
    every fragment; returns the line."""
    assert main(args) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]
