"""The record table, and the tables and plots built from it (nothing here trains or imports a model).

:func:`records_frame` is the one table of records (one row per record: the spec, status,
versions, the numbers the reports plot, and every spec, config, metric and environment field
flattened as ``data.*``, ``train.*``, ``model.*``, ``rate.*``, ``throughput.*``, ``env.*``);
:func:`select_records` picks what a report shows; :func:`record_marks` marks what may not be what
this checkout computes. The rest renders: :class:`Table` (``mean ± std (n)`` over seeds, best in
bold) as Markdown and LaTeX, the published-numbers and settings tables, and figures as PNG and
PDF. Each task's own report (:mod:`bench.tasks`) composes these; :mod:`bench.suite_report` writes
a suite's ``table.md``, ``table.tex`` and plots. Records of one profile are reported (the largest
present unless asked); when a spec was run more than once (an older code version), its latest
record counts.

Records that may not be what this checkout computes are marked in every table cell they enter,
with a legend under the table (:data:`MARKS`): † an older code version of the model (or, for
function approximation, of ``hippo.funcapprox``) or of the harness; ‡ made from a modified
(dirty) working tree; § its commit is not an ancestor of the results directory's ``HEAD``
(checked with ``git merge-base --is-ancestor``; a note says when git cannot tell).
"""

from __future__ import annotations

import functools
import math
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display (CI, nightly jobs)
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from tabulate import tabulate  # noqa: E402

from bench import records  # noqa: E402
from bench.published import published_anchor, verdict  # noqa: E402
from bench.records import RunRecord  # noqa: E402
from bench.settings import PROFILES, TrainSettings  # noqa: E402

# Knows the code version a record of (task, model) would have in this checkout (None: cannot
# tell); bench.tasks.current_version is the one, handed in from above.
CurrentVersion = Callable[[str, str], "str | None"]


class NoRecordsError(Exception):
    """There is nothing to report for the suite (message is one line)."""


@dataclass
class Table:
    """A rendered-agnostic table: ``cells[r][c]`` are strings, ``bold[r][c]`` marks the best."""

    caption: str
    row_header: str
    columns: list[str]
    rows: list[str]
    cells: list[list[str]]
    bold: list[list[bool]]
    notes: list[str] = field(default_factory=list)


def records_frame(recs: Sequence[RunRecord], current_version: CurrentVersion | None = None,
                  flat: bool = False) -> pd.DataFrame:  # fmt: skip
    """The record table: one row per record (columns: module docstring). With ``flat``, only
    the record's own fields, flat (what :func:`bench.load_results` returns), without the
    columns the reports add (keys, settings summaries, curves).

    ``current_version(task, model)`` fills ``current_version``, the code version a record of
    that task and model would have now (None where unknown, and everywhere without it): reports
    mark records of older code (:func:`record_marks`).
    """
    versions: dict[tuple[str, str], str | None] = {}
    rows = []
    for r in recs:
        if flat:
            rows.append(_flat_fields(r))
            continue
        s = r.spec
        key = (s.task, s.model)
        if key not in versions:
            versions[key] = current_version(*key) if current_version is not None else None
        row = _flat_fields(r)
        row |= {
            "id": r.id, "suite": s.suite, "task": s.task, "model": s.model, "condition": s.condition,
            "seed": s.seed, "profile": s.profile, "time": s.data.get("time"), "status": r.status,
            "train_hz": s.data.get("train_hz"),
            "finished_at": r.finished_at or "", "spec_key": records.canonical_json(s.to_dict()),
            "setting_key": records.canonical_json({**s.to_dict(), "seed": None}),
            "version_key": f"{r.code_version}|{r.harness_version}",
            "code_version": r.code_version, "harness_version": r.harness_version,
            "current_version": versions[key],
            "num_parameters": r.num_parameters, "num_classes": r.metrics.get("num_classes"),
            "git_commit": (r.environment or {}).get("git_commit"), "git_dirty": (r.environment or {}).get("git_dirty"),
        }  # fmt: skip
        for key in ("test_acc", "test_acc_eval_selected", "best_epoch", "best_epoch_eval_selected", "val_acc",
                    "val_acc_train_rate", "val_acc_eval_rate", "mse", "steps_per_s", "N"):  # fmt: skip
            row[key] = r.metrics.get(key)
        row["dataset"] = s.dataset
        row["settings"] = _settings_summary(r)
        row["train_seconds"] = r.train_seconds
        row["reused_from"] = r.reused_from
        row["N"] = s.model_args.get("N")
        for name in ("train_samples_per_s", "infer_samples_per_s", "train_steps_per_s", "infer_steps_per_s",
                     "stream_samples_per_s", "stream_steps_per_s", "state_bytes_per_series", "peak_rss_bytes"):  # fmt: skip
            row[name] = (r.throughput or {}).get(name)
        if row["peak_memory_bytes"] is None:
            row["peak_memory_bytes"] = (r.throughput or {}).get("peak_memory_bytes")
        row["rate_curve"] = dict(r.rate_curve or {})
        row["history"] = list(r.history or [])
        row["test_examples"] = r.metrics.get("test_examples")
        row["test_size"] = ((r.data_protocol or {}).get("split_sizes") or {}).get("test")
        rows.append(row)
    return pd.DataFrame(rows)


def _flat_fields(record: RunRecord) -> dict[str, Any]:
    """A record's fields, flat: the spec, ``data.*``, ``train.*``, ``model.*`` (its resolved
    configuration), the scalar metrics, ``rate.<r>``, ``throughput.*``, ``env.*``."""
    s = record.spec
    row: dict[str, Any] = {
        "id": record.id, "status": record.status, "error": record.error, "code_version": record.code_version,
        "harness_version": record.harness_version,
        "suite": s.suite, "task": s.task, "dataset": s.dataset, "condition": s.condition, "model": s.model,
        "seed": s.seed, "profile": s.profile,
    }  # fmt: skip
    row.update({f"data.{k}": v for k, v in s.data.items()})
    row.update({f"train.{k}": v for k, v in s.train.items()})
    row.update({f"model.{k}": v for k, v in {**(record.model_config or {}), **s.model_args}.items()})
    row.update({k: v for k, v in record.metrics.items() if not isinstance(v, dict | list)})
    row.update({f"rate.{k}": v for k, v in (record.rate_curve or {}).items()})
    row.update({f"throughput.{k}": v for k, v in (record.throughput or {}).items()})
    row.update({f"env.{k}": v for k, v in (record.environment or {}).items() if not isinstance(v, dict)})
    for key in ("num_parameters", "train_seconds", "peak_memory_bytes", "started_at", "finished_at", "reused_from"):
        row[key] = getattr(record, key)
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


# Settings shown per model in a report: training settings, then the model's width arguments.
SETTINGS_COLUMNS = ("hidden_size", "hidden_hidden_size", "num_hidden_layers", "batch_size", "lr",
                    "weight_decay", "epochs", "limit_train_batches", "val_every", "lr_plateau_patience",
                    "stop_patience", "settings from")  # fmt: skip


def _settings_summary(record: RunRecord) -> dict[str, Any]:
    """The effective settings a record states: its training settings and model configuration."""
    config = {**(record.model_config or {}), **record.spec.model_args}
    train = dict(record.spec.train)
    if train:  # a task with training settings (funcapprox has none)
        try:  # older records leave defaults out: state them (weight decay 0, ...)
            train = TrainSettings.from_dict(train).to_dict()
        except ValueError:
            pass
    values = {**{k: config.get(k) for k in SETTINGS_COLUMNS[:3]}, **train}
    provenance = record.spec.provenance
    origin = [provenance["settings"]] if "settings" in provenance else []
    origin += [f"--set {k}={v}" for k, v in provenance.get("overrides", {}).items()]
    values["settings from"] = "; ".join(origin) or None  # None: the model's reference
    return {k: values.get(k) for k in SETTINGS_COLUMNS}


def select_records(frame: pd.DataFrame, profile: str | None) -> tuple[pd.DataFrame, str]:
    """Rows of one profile (the largest present by default), latest record per spec, and per
    table cell only the setting and the model code of its latest record (a cell never averages
    runs of two code versions: a changed model's older records wait until they are rerun)."""
    present = [p for p in PROFILES if p in set(frame["profile"])]
    if profile is None:
        profile = present[-1] if present else frame["profile"].iloc[0]
    if profile not in set(frame["profile"]):
        raise NoRecordsError(f"no records for profile {profile!r}; present: {', '.join(present)}")
    frame = frame[frame["profile"] == profile].sort_values("finished_at")
    frame = frame.drop_duplicates("spec_key", keep="last")
    # One setting per table cell: records of other hyperparameters left in the folder (an older
    # suite definition, other --models overrides) must not be averaged in as extra "seeds".
    cell = ["model", "dataset", "condition", "time"]
    latest = frame.groupby(cell, dropna=False)["setting_key"].transform("last")
    frame = frame[frame["setting_key"] == latest]
    latest = frame.groupby(cell, dropna=False)["version_key"].transform("last")
    return frame[frame["version_key"] == latest], profile


# What a mark on a table cell says about (some of) the records it averages.
MARKS = {
    "†": "ran on an older code version of the model or the harness than this checkout's",
    "‡": "made from a modified working tree (git_dirty): the code that ran is not in any commit",
    "§": "its commit is not an ancestor of HEAD (a rebased, amended or unmerged commit)",
}


@functools.lru_cache(maxsize=4096)
def _is_ancestor(folder: str, commit: str) -> bool | None:
    """Whether ``commit`` is an ancestor of HEAD in the git repository holding ``folder``;
    None when git cannot tell (no git, not a repository)."""
    def git(*args: str) -> int | None:
        try:
            return subprocess.run(["git", "-C", folder, *args], capture_output=True, timeout=30).returncode
        except (OSError, subprocess.SubprocessError):
            return None

    if git("rev-parse", "--verify", "--quiet", "HEAD") != 0:
        return None
    code = git("merge-base", "--is-ancestor", commit, "HEAD")
    return None if code is None else code == 0  # 1: not an ancestor; 128: no such commit here


def record_marks(ok: pd.DataFrame, folder: Path) -> tuple[pd.Series, bool]:
    """Per record its marks (:data:`MARKS`, e.g. ``"†‡"``), and whether some commits could not
    be checked against HEAD (git not there, or ``folder`` not in a repository)."""
    unknown = False
    marks = []
    for r, current in zip(ok.itertuples(), is_current(ok), strict=True):
        found = ""
        if not current:
            found += "†"
        if r.git_dirty is True:
            found += "‡"
        if isinstance(r.git_commit, str) and r.git_commit:
            ancestor = _is_ancestor(str(Path(folder).resolve()), r.git_commit)
            unknown |= ancestor is None
            if ancestor is False:
                found += "§"
        marks.append(found)
    return pd.Series(marks, index=ok.index, dtype=object), unknown


def _cell_marks(rows: pd.DataFrame) -> str:
    """The marks of a cell's records, in :data:`MARKS` order ("" when none or unmarked)."""
    if "marks" not in rows:
        return ""
    seen = set("".join(m for m in rows["marks"] if isinstance(m, str)))
    return "".join(m for m in MARKS if m in seen)


def _marked(text: str, marks: str) -> str:
    return f"{text} {marks}" if marks and text != "–" else text


def marks_legend(table: Table) -> None:
    """Add the legend of the marks that appear in ``table``'s cells under it."""
    used = [m for m in MARKS if any(m in c for line in table.cells for c in line)]
    if used:
        table.notes.append("Marks: " + "; ".join(f"{m} {MARKS[m]}" for m in used) + ". Rerun the marked runs "
                           "from a clean checkout to clear them.")  # fmt: skip


def _mean_std(values: Sequence[float], scale: float, fmt: str) -> tuple[str, float]:
    vals = [v * scale for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return "–", math.nan
    mean = sum(vals) / len(vals)
    if len(vals) == 1:  # one run measures no spread: say n = 1 instead of a made-up ± 0
        return f"{mean:{fmt}} (1)", mean
    std = pd.Series(vals).std(ddof=1)
    return f"{mean:{fmt}} ± {std:{fmt}} ({len(vals)})", mean


def pivot_table(
    ok: pd.DataFrame,
    value: str,
    *,
    row: str,
    column: str,
    scale: float = 1.0,
    fmt: str = ".1f",
    higher_is_better: bool = True,
    caption: str = "",
) -> Table:
    """``mean ± std (n)`` of ``value`` per (row, column); the best mean per column in bold."""
    rows = list(dict.fromkeys(ok[row]))
    columns = list(dict.fromkeys(ok[column]))
    cells, means = [], []
    for r in rows:
        line, line_means = [], []
        for c in columns:
            rows_rc = ok[(ok[row] == r) & (ok[column] == c)]
            text, mean = _mean_std(list(rows_rc[value]), scale, fmt)
            line.append(_marked(text, _cell_marks(rows_rc.dropna(subset=[value]))))
            line_means.append(mean)
        cells.append(line)
        means.append(line_means)
    bold = [[False] * len(columns) for _ in rows]
    pick: Callable = max if higher_is_better else min
    for j in range(len(columns)):
        col = [(m[j], i) for i, m in enumerate(means) if not math.isnan(m[j])]
        if col:
            best = pick(col)[0]
            for m, i in col:
                bold[i][j] = m == best
    table = Table(caption, row, [str(c) for c in columns], [str(r) for r in rows], cells, bold)
    marks_legend(table)
    return table


def to_markdown(table: Table) -> str:
    body = [
        [r] + [f"**{c}**" if b else c for c, b in zip(cells, bold, strict=True)]
        for r, cells, bold in zip(table.rows, table.cells, table.bold, strict=True)
    ]
    # cells are text as shown (a published "6.0" stays "6.0"; no number parsing)
    text = tabulate(body, headers=[table.row_header, *table.columns], tablefmt="github", disable_numparse=True)
    notes = "".join(f"\n{n}" for n in table.notes)
    return f"{table.caption}\n\n{text}\n{notes}\n"


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}", "†": r"$\dagger$",
                  "‡": r"$\ddagger$", "§": r"\S{}"}  # fmt: skip


def latex_escape(text: str) -> str:
    out = "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)
    return out.replace("±", r"$\pm$").replace("->", r"$\to$").replace("–", "--")


def to_latex(table: Table) -> str:
    """A booktabs ``table`` environment; best cells in ``\\textbf``."""
    spec = "l" + "c" * len(table.columns)
    lines = [
        r"\begin{table}[t]", r"\centering",
        r"\caption{" + latex_escape(" ".join([table.caption, *table.notes])) + "}",
        r"\begin{tabular}{" + spec + "}", r"\toprule",
        " & ".join(latex_escape(h) for h in [table.row_header, *table.columns]) + r" \\",
        r"\midrule",
    ]  # fmt: skip
    for r, cells, bold in zip(table.rows, table.cells, table.bold, strict=True):
        shown = [r"\textbf{" + latex_escape(c) + "}" if b else latex_escape(c) for c, b in zip(cells, bold, strict=True)]
        lines.append(" & ".join([latex_escape(r), *shown]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def save_figure(fig: plt.Figure, folder: Path, name: str) -> list[Path]:
    paths = [folder / f"{name}.png", folder / f"{name}.pdf"]
    fig.tight_layout()
    for p in paths:
        # no creation date in the PDF: an unchanged report rebuilds byte for byte (clean diffs)
        metadata = {"CreationDate": None} if p.suffix == ".pdf" else None
        fig.savefig(p, dpi=150, bbox_inches="tight", metadata=metadata)
    plt.close(fig)
    return paths


def time_note(ok: pd.DataFrame) -> str:
    modes = sorted({t for t in ok["time"] if isinstance(t, str)})
    return f" Time given to models: {' and '.join(modes)}." if modes else ""


def column_label(ok: pd.DataFrame) -> pd.Series:
    """Condition, plus the time mode when records of both modes are reported side by side, and
    the dataset when records of several datasets are (``--dataset``)."""
    label = ok["condition"]
    if ok["time"].nunique(dropna=True) > 1:
        label = label + " (" + ok["time"].fillna("") + " time)"
    if ok["dataset"].nunique(dropna=True) > 1:
        label = ok["dataset"].fillna("") + ": " + label
    return label


def settings_table(ok: pd.DataFrame) -> Table:
    """One row per model: the effective settings its records state (``–`` where not applicable).

    Models trained in different settings (each its own reference) are shown as such, never
    summarised by one caption line. A model whose records disagree lists each setting seen.
    """
    rows = list(dict.fromkeys(ok["model"]))
    shown = [c for c in SETTINGS_COLUMNS if any(s.get(c) is not None for s in ok["settings"])]
    cells = []
    for model in rows:
        settings = list(ok[ok["model"] == model]["settings"])
        line = []
        for c in shown:
            seen = list(dict.fromkeys("–" if s.get(c) is None else f"{s[c]:g}" if isinstance(s[c], float) else str(s[c])
                                      for s in settings))  # fmt: skip
            line.append(" / ".join(seen))
        cells.append(line)
    seconds = ok.groupby("model", sort=False)["train_seconds"].sum(min_count=1)
    if seconds.notna().any():
        shown.append("training time (all runs)")
        for i, model in enumerate(rows):
            total = seconds.get(model)
            cells[i].append("–" if total is None or pd.isna(total) else duration(float(total)))
    return Table("Settings of each model (from the records: training settings and model arguments).",
                 "model", shown, rows, cells, [[False] * len(shown) for _ in rows])  # fmt: skip


def is_current(ok: pd.DataFrame) -> pd.Series:
    """Per run: did it run on this version of its model (or task) and of the harness? (True
    for a version this checkout cannot know: a model that is not registered or does not import,
    or a table built without ``current_version``.)"""
    return pd.Series([h == records.HARNESS_VERSION and (now is None or c == now)
                      for c, h, now in zip(ok["code_version"], ok["harness_version"], ok["current_version"],
                                           strict=True)],
                     index=ok.index, dtype=bool)  # fmt: skip


def older_code_note(ok: pd.DataFrame) -> str | None:
    """Which models' shown records come from another code or harness version than this one
    (a changed model's records wait for their rerun), or None."""
    older = {}
    stale = ok[~is_current(ok)]
    for model, old in stale.groupby("model", sort=False):
        runs = ok[ok["model"] == model]
        now = (old["current_version"].iloc[0] or "?", records.HARNESS_VERSION)
        versions = ", ".join(sorted({f"code {c}, harness {h}" for c, h in
                                     zip(old["code_version"], old["harness_version"], strict=True)}))
        cells = ", ".join(dict.fromkeys(old["column"] if "column" in old else old["condition"]))
        older[model] = (f"{model}, {len(old)} of {len(runs)} runs ({cells}: {versions}; now code "
                        f"{now[0]}, harness {now[1]})")
    if not older:
        return None
    return f"Ran on an older version of the model or harness: {'; '.join(older.values())}. Rerun the suite to update."


def published_table(suite: str, ok: pd.DataFrame) -> Table | None:
    """Our numbers beside the published ones (``bench.published``), or None when none apply.

    Per condition: the honest selection, the reference selection (where records have one) and
    the published number; then the accuracy at the training rate and the training time. A cell
    whose records are marked (:data:`MARKS`: older code, dirty tree, commit not in HEAD's history) shows
    the marks. Only for
    records in index time (or with no clock), the time the paper used.
    """
    ok = ok[ok["time"].isna() | (ok["time"] == "index")]
    rows, conditions = list(dict.fromkeys(ok["model"])), list(dict.fromkeys(ok["column"]))
    source = dict(zip(ok["column"], zip(ok["dataset"], ok["condition"], strict=True), strict=True))
    found = {(m, c): published_anchor(*source[c], m) for m in rows for c in conditions}
    if not any(found.values()):
        return None
    kinds = {"honest": "test_acc", "reference": "test_acc_eval_selected", "paper": None, "verdict": None}
    if ok["test_acc_eval_selected"].isna().all():
        del kinds["reference"]
    at_train = bool("acc_train_rate" in ok and ok["acc_train_rate"].notna().any())
    columns = [f"{c} {kind}" for c in conditions for kind in kinds]
    columns += ["at the training rate"] * at_train + ["training time"]

    def measured(model: str, key: str, column: str) -> str:
        cell = ok[(ok["model"] == model) & (ok["column"] == column)]
        return _marked(_mean_std(list(cell[key]), 100, ".1f")[0], _cell_marks(cell.dropna(subset=[key])))

    def judged(model: str, column: str) -> str:
        anchor = found.get((model, column))
        runs = ok[(ok["model"] == model) & (ok["column"] == column)]
        if anchor is None or runs["test_acc"].dropna().empty:
            return "–"
        reference = runs["test_acc_eval_selected"].dropna()
        return verdict(anchor, 100 * float(runs["test_acc"].mean()),
                       100 * float(reference.mean()) if "reference" in kinds and len(reference) else None)

    cells = []
    for model in rows:
        line = []
        for c in conditions:
            paper = found.get((model, c))
            shown = {"paper": "–" if paper is None else paper.text(), "verdict": judged(model, c)}
            line += [measured(model, key, c) if key else shown[kind] for kind, key in kinds.items()]
        if at_train:
            line.append(" / ".join(measured(model, "acc_train_rate", c) for c in conditions))
        seconds = ok[ok["model"] == model]["train_seconds"].sum(min_count=1)
        line.append("–" if pd.isna(seconds) else duration(float(seconds)))
        cells.append(line)
    sources = sorted({v.source for v in found.values() if v})
    caption = (f"{suite}: side by side with the published numbers ({'; '.join(sources)}); test accuracy (%), "
               "mean ± std over seeds (n runs). Honest: selection on validation at the training rate")  # fmt: skip
    caption += "; reference: at the evaluation rate (the tables above)." if "reference" in kinds else "."
    if at_train:
        caption += (" At the training rate: test accuracy without the shift, one value per condition in "
                    "the order of the columns.")  # fmt: skip
    caption += (" Verdict: reproduced (within the published std or 2 points), between our selections (the "
                "published number lies between them), or off by our nearer mean minus the published one.")
    caption += " Training time adds up the runs shown."
    table = Table(caption, "model", columns, rows, cells, [[False] * len(columns) for _ in rows])
    marks_legend(table)
    return table


def duration(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.1f} min" if minutes < 90 else f"{minutes / 60:.1f} h"


