"""Readers for the UEA archive's ``.ts`` files and its per-dimension ``.arff`` files.

Both give a :class:`ParsedSeries`: ``values`` ``(N, C, Lmax)`` float64 with NaN wherever there is
no value (a ``?`` in the file, or past the end of a shorter channel), the class label of every
series as written in the file (a string) and the classes in their declared order.

Every problem with a file raises one :class:`DataFormatError` whose message reads
``<file>:<line>: expected <what>, got <what was there>``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DataFormatError(ValueError):
    """A malformed data file; the message names the file, the line and what was expected."""

    def __init__(
        self, path: str | os.PathLike[str], line: int, expected: str, got: str | None = None
    ):
        self.path, self.line = Path(path), line
        message = f"{path}:{line}: expected {expected}"
        super().__init__(message if got is None else f"{message}, got {got}")


@dataclass
class ParsedSeries:
    """One split of a dataset as read from disk.

    - ``values``  ``(N, C, Lmax)`` float64; NaN = missing value or past the channel's end.
    - ``labels``  ``(N,)`` str: class labels exactly as spelled in the file (quotes removed).
    - ``classes`` the class labels in the order the header declares them (else natural order).
    """

    values: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def natural_classes(labels: np.ndarray) -> tuple[str, ...]:
    """Distinct labels sorted numerically when they are all numbers ("2" before "10"), else as text."""
    distinct = set(labels.tolist())
    try:
        return tuple(sorted(distinct, key=float))
    except ValueError:
        return tuple(sorted(distinct))


def _numbers(tokens: list[str], path: Path, lineno: int, where: str) -> np.ndarray:
    """Parse tokens (``?`` already replaced by ``nan``) as float64, or name the bad token."""
    try:
        return np.array(tokens, dtype=np.float64)
    except ValueError:
        for column, token in enumerate(tokens, start=1):
            try:
                float(token)
            except ValueError:
                hint = " (truncated line?)" if not token.strip() else ""
                raise DataFormatError(
                    path,
                    lineno,
                    f"a number or '?' as value {column} of {where}",
                    f"{token!r}{hint}",
                ) from None
        raise  # pragma: no cover - numpy and float() disagree


def _stack(rows: list[list[np.ndarray]]) -> np.ndarray:
    """Ragged rows of per-channel arrays -> ``(N, C, Lmax)`` float64 padded with NaN."""
    n, c = len(rows), len(rows[0])
    lmax = max(len(channel) for row in rows for channel in row)
    out = np.full((n, c, lmax), np.nan)
    for i, row in enumerate(rows):
        for j, channel in enumerate(row):
            out[i, j, : len(channel)] = channel
    return out


def _read_lines(path: Path) -> list[str]:
    # The archive's files are ASCII; undecodable bytes must not stop a parse, only a bad value does.
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read().splitlines()


_TS_BOOL_TAGS = ("@timestamps", "@missing", "@univariate", "@equallength")


def read_ts(path: str | os.PathLike[str]) -> ParsedSeries:
    """Read a UEA/sktime ``.ts`` classification file (variable length, missing ``?``, any labels).

    Header tags are case-insensitive; unknown tags are ignored. Timestamped files
    (``@timeStamps true``) and files without class labels are rejected.
    """
    path = Path(path)
    lines = _read_lines(path)
    dims: int | None = None
    series_length: int | None = None
    equal_length = False
    classes: tuple[str, ...] | None = None
    in_header = True
    rows: list[list[np.ndarray]] = []
    labels: list[str] = []
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if in_header:
            if not line.startswith("@"):
                raise DataFormatError(
                    path, lineno, "a '@' header tag or '@data' before the series", repr(line[:40])
                )
            tag, *args = line.split()
            tag = tag.lower()
            if tag in _TS_BOOL_TAGS:
                if len(args) != 1 or args[0].lower() not in ("true", "false"):
                    raise DataFormatError(
                        path, lineno, f"'{tag} true' or '{tag} false'", repr(line)
                    )
                flag = args[0].lower() == "true"
                if tag == "@timestamps" and flag:
                    raise DataFormatError(
                        path,
                        lineno,
                        "'@timeStamps false' (timestamped series are not supported)",
                        repr(line),
                    )
                if tag == "@equallength":
                    equal_length = flag
            elif tag in ("@dimension", "@dimensions", "@serieslength"):
                if len(args) != 1 or not args[0].isdigit() or int(args[0]) < 1:
                    raise DataFormatError(path, lineno, f"'{tag} <positive integer>'", repr(line))
                if tag == "@serieslength":
                    series_length = int(args[0])
                else:
                    dims = int(args[0])
            elif tag == "@classlabel":
                if not args or args[0].lower() != "true" or len(args) < 2:
                    raise DataFormatError(
                        path,
                        lineno,
                        "'@classLabel true <label> <label> ...' (a classification file)",
                        repr(line),
                    )
                classes = tuple(_unquote(a) for a in args[1:])
            elif tag == "@targetlabel" and args and args[0].lower() == "true":
                raise DataFormatError(
                    path, lineno, "'@classLabel true ...' (a classification file)", repr(line)
                )
            elif tag == "@data":
                if classes is None:
                    raise DataFormatError(
                        path, lineno, "'@classLabel true <labels>' before '@data'", "'@data'"
                    )
                in_header = False
            continue
        fields = line.split(":")
        if dims is None:
            dims = len(fields) - 1
        if len(fields) != dims + 1 or dims < 1:
            raise DataFormatError(
                path,
                lineno,
                f"{dims} dimension(s) and a class label separated by ':' ({dims + 1} fields)",
                f"{len(fields)} field(s) (truncated line or unequal dimensions?)",
            )
        label = _unquote(fields[-1])
        if label not in classes:
            raise DataFormatError(
                path, lineno, f"a class label declared by @classLabel {list(classes)}", repr(label)
            )
        row = []
        for d, text in enumerate(fields[:-1], start=1):
            channel = _numbers(text.replace("?", "nan").split(","), path, lineno, f"dimension {d}")
            if equal_length and series_length is not None and len(channel) != series_length:
                raise DataFormatError(
                    path,
                    lineno,
                    f"{series_length} values in dimension {d} (@seriesLength)",
                    str(len(channel)),
                )
            row.append(channel)
        rows.append(row)
        labels.append(label)
    if in_header:
        raise DataFormatError(path, len(lines), "'@data' followed by the series", "end of file")
    if not rows:
        raise DataFormatError(path, len(lines), "at least one series after '@data'", "end of file")
    return ParsedSeries(_stack(rows), np.array(labels), classes)


_ARFF_ATTRIBUTE = re.compile(r"@attribute\s+('[^']*'|\"[^\"]*\"|\S+)\s+(.+)$", re.IGNORECASE)


def _arff_header(path: Path, lines: list[str]) -> tuple[int, tuple[str, ...], int]:
    """Check an ARFF header: ``@relation``, numeric attributes, a nominal class last, ``@data``.

    Returns (number of numeric attributes, declared classes, index of the first data line).
    """
    seen_relation = False
    kinds: list[str] = []
    classes: tuple[str, ...] = ()
    for index, raw in enumerate(lines):
        lineno, line = index + 1, raw.strip()
        if not line or line.startswith("%"):
            continue
        word = line.split(None, 1)[0].lower()
        if not seen_relation:
            if word != "@relation":
                raise DataFormatError(
                    path, lineno, "'@relation <name>' as the first declaration", repr(line[:40])
                )
            seen_relation = True
        elif word == "@attribute":
            match = _ARFF_ATTRIBUTE.match(line)
            kind = match.group(2).strip() if match else ""
            if kinds and kinds[-1] == "nominal":
                raise DataFormatError(
                    path,
                    lineno,
                    "the nominal class attribute to be the last attribute",
                    repr(line[:60]),
                )
            if kind.lower() in ("numeric", "real", "integer"):
                kinds.append("numeric")
            elif kind.startswith("{") and kind.endswith("}"):
                kinds.append("nominal")
                classes = tuple(_unquote(v) for v in kind[1:-1].split(","))
            else:
                raise DataFormatError(
                    path,
                    lineno,
                    "'@attribute <name> numeric' or a nominal class '{a,b,...}' (per-dimension ARFF)",
                    repr(line[:60]),
                )
        elif word == "@data":
            if not kinds or kinds[-1] != "nominal" or len(kinds) < 2:
                raise DataFormatError(
                    path,
                    lineno,
                    "numeric attributes followed by a nominal class attribute before '@data'",
                    f"{len(kinds)} attribute(s)",
                )
            return len(kinds) - 1, classes, index + 1
        else:
            raise DataFormatError(path, lineno, "'@attribute' or '@data'", repr(line[:40]))
    raise DataFormatError(
        path, len(lines), "'@relation', '@attribute' lines and '@data'", "end of file"
    )


def _read_arff_rows(path: Path) -> tuple[np.ndarray, list[str], list[int], tuple[str, ...]]:
    lines = _read_lines(path)
    width, classes, start = _arff_header(path, lines)
    rows: list[np.ndarray] = []
    labels: list[str] = []
    linenos: list[int] = []
    for index in range(start, len(lines)):
        lineno, line = index + 1, lines[index].strip()
        if not line or line.startswith("%"):
            continue
        if line.startswith("{"):
            raise DataFormatError(
                path, lineno, "a dense row of comma-separated values", "a sparse row '{...}'"
            )
        head, _, label = line.rpartition(",")
        tokens = head.replace("?", "nan").split(",") if head else []
        if len(tokens) != width:
            raise DataFormatError(
                path,
                lineno,
                f"{width + 1} comma-separated values ({width} numbers and a class label)",
                f"{len(tokens) + 1} (truncated line?)",
            )
        label = _unquote(label)
        if label not in classes:
            raise DataFormatError(
                path,
                lineno,
                f"a class label from the declared {{{','.join(classes)}}}",
                repr(label),
            )
        rows.append(_numbers(tokens, path, lineno, "the row"))
        labels.append(label)
        linenos.append(lineno)
    if not rows:
        raise DataFormatError(path, len(lines), "at least one row after '@data'", "end of file")
    return np.stack(rows), labels, linenos, classes


def read_arff(path: str | os.PathLike[str]) -> ParsedSeries:
    """Read one per-dimension ``.arff`` file (one channel; ``?`` pads shorter series) -> ``C = 1``."""
    values, labels, _, classes = _read_arff_rows(Path(path))
    return ParsedSeries(values[:, None, :], np.array(labels), classes)


def read_arff_dimensions(paths: list[str | os.PathLike[str]]) -> ParsedSeries:
    """Read the per-dimension ``.arff`` files of one split (``Dimension1``, ``Dimension2``, ...).

    The files must hold the same series in the same order: same row count, same label per row.
    """
    paths = [Path(p) for p in paths]
    first_values, first_labels, _, classes = _read_arff_rows(paths[0])
    channels = [first_values]
    for path in paths[1:]:
        values, labels, linenos, other_classes = _read_arff_rows(path)
        n = len(first_labels)
        if len(labels) != n:
            line = linenos[n] if len(labels) > n else linenos[-1]
            raise DataFormatError(
                path,
                line,
                f"{n} rows, as many as {paths[0].name} (dimensions must match)",
                f"{len(labels)} rows",
            )
        if set(other_classes) != set(classes):
            raise DataFormatError(
                path, 1, f"the classes of {paths[0].name} {list(classes)}", str(list(other_classes))
            )
        for row, (a, b) in enumerate(zip(first_labels, labels, strict=True)):
            if a != b:
                raise DataFormatError(
                    path,
                    linenos[row],
                    f"label {a!r} as in row {row + 1} of {paths[0].name}",
                    repr(b),
                )
        channels.append(values)
    lmax = max(v.shape[1] for v in channels)
    out = np.full((len(first_labels), len(channels), lmax), np.nan)
    for c, v in enumerate(channels):
        out[:, c, : v.shape[1]] = v
    return ParsedSeries(out, np.array(first_labels), classes)
