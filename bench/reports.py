"""Tables and plots from run records alone (nothing here trains or imports a model).

For each suite: ``table.md`` and ``table.tex`` (rows = models, columns = conditions: shifts,
tasks or N; ``mean ± std (n)`` over seeds with the best mean in bold; chance level, time mode
and profile in the caption) and seaborn plots as PNG and PDF, all in ``<results>/<suite>/``.
Records of one profile are reported (the largest present unless asked); when a spec was run
more than once (an older code version), its latest record counts.

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
import seaborn as sns  # noqa: E402
from tabulate import tabulate  # noqa: E402

from bench import records  # noqa: E402
from bench.published import published_anchor, verdict  # noqa: E402
from bench.records import RunRecord  # noqa: E402
from bench.settings import TrainSettings, follows_profile, profile_description  # noqa: E402
from bench.suites import PROFILES  # noqa: E402
from bench.tasks import get_task  # noqa: E402


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


def records_frame(recs: Sequence[RunRecord]) -> pd.DataFrame:
    """One row per record: spec fields, status and the flat metrics the tables and plots use."""
    rows = []
    for r in recs:
        s = r.spec
        row = {
            "id": r.id, "suite": s.suite, "task": s.task, "model": s.model, "condition": s.condition,
            "seed": s.seed, "profile": s.profile, "time": s.data.get("time"), "status": r.status,
            "train_hz": s.data.get("train_hz"),
            "finished_at": r.finished_at or "", "spec_key": records.canonical_json(s.to_dict()),
            "setting_key": records.canonical_json({**s.to_dict(), "seed": None}),
            "version_key": f"{r.code_version}|{r.harness_version}",
            "code_version": r.code_version, "harness_version": r.harness_version,
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
        for key in ("train_samples_per_s", "infer_samples_per_s", "train_steps_per_s", "infer_steps_per_s",
                    "stream_samples_per_s", "stream_steps_per_s", "state_bytes_per_series",
                    "peak_memory_bytes", "peak_rss_bytes"):  # fmt: skip
            row[key] = (r.throughput or {}).get(key)
        row["rate_curve"] = dict(r.rate_curve or {})
        row["history"] = list(r.history or [])
        row["test_examples"] = r.metrics.get("test_examples")
        row["test_size"] = ((r.data_protocol or {}).get("split_sizes") or {}).get("test")
        rows.append(row)
    return pd.DataFrame(rows)


# Settings shown per model in a report: training settings, then the model's width arguments.
SETTINGS_COLUMNS = ("hidden_size", "hidden_hidden_size", "num_hidden_layers", "batch_size", "lr",
                    "weight_decay", "epochs", "limit_train_batches", "val_every", "lr_plateau_patience",
                    "stop_patience", "settings from")  # fmt: skip


def _settings_summary(record: RunRecord) -> dict[str, Any]:
    """The effective settings a record states: its training settings and model configuration."""
    config = {**(record.model_config or {}), **record.spec.model_args}
    train = dict(record.spec.train)
    if get_task(record.spec.task).settings:
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


def _current_version(task: str, model: str) -> str | None:
    """The code version a record of ``task`` and ``model`` would have now (the model's, or the
    task's own such as ``hippo.funcapprox``'s for its measures); None when it cannot be known."""
    try:
        t = get_task(task)
        if t.version is not None:
            return str(t.load("version"))
        from bench.models import get_model_entry

        return get_model_entry(model).code_version()
    except Exception:
        return None  # a model that is not registered (or does not import) here


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
    current = {key: _current_version(*key) for key in dict.fromkeys(zip(ok["task"], ok["model"], strict=True))}
    for r in ok.itertuples():
        found = ""
        now = current[(r.task, r.model)]
        if r.harness_version != records.HARNESS_VERSION or (now is not None and r.code_version != now):
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


def _save(fig: plt.Figure, folder: Path, name: str) -> list[Path]:
    paths = [folder / f"{name}.png", folder / f"{name}.pdf"]
    fig.tight_layout()
    for p in paths:
        # no creation date in the PDF: an unchanged report rebuilds byte for byte (clean diffs)
        metadata = {"CreationDate": None} if p.suffix == ".pdf" else None
        fig.savefig(p, dpi=150, bbox_inches="tight", metadata=metadata)
    plt.close(fig)
    return paths


def _time_note(ok: pd.DataFrame) -> str:
    modes = sorted({t for t in ok["time"] if isinstance(t, str)})
    return f" Time given to models: {' and '.join(modes)}." if modes else ""


def _column_label(ok: pd.DataFrame) -> pd.Series:
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
            cells[i].append("–" if total is None or pd.isna(total) else _duration(float(total)))
    return Table("Settings of each model (from the records: training settings and model arguments).",
                 "model", shown, rows, cells, [[False] * len(shown) for _ in rows])  # fmt: skip


def _is_current(ok: pd.DataFrame) -> pd.Series:
    """Per run: did it run on this version of its model (or task) and of the harness? (True
    for a version this checkout cannot know: a model that is not registered or does not import.)"""
    current = {key: _current_version(*key) for key in dict.fromkeys(zip(ok["task"], ok["model"], strict=True))}
    return pd.Series([h == records.HARNESS_VERSION and (current[(t, m)] is None or c == current[(t, m)])
                      for t, m, c, h in zip(ok["task"], ok["model"], ok["code_version"], ok["harness_version"],
                                            strict=True)],
                     index=ok.index, dtype=bool)  # fmt: skip


def _older_code_note(ok: pd.DataFrame) -> str | None:
    """Which models' shown records come from another code or harness version than this one
    (a changed model's records wait for their rerun), or None."""
    older = {}
    stale = ok[~_is_current(ok)]
    for model, old in stale.groupby("model", sort=False):
        runs = ok[ok["model"] == model]
        now = (_current_version(old["task"].iloc[0], model) or "?", records.HARNESS_VERSION)
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
        line.append("–" if pd.isna(seconds) else _duration(float(seconds)))
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


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.1f} min" if minutes < 90 else f"{minutes / 60:.1f} h"


def classification_report(suite: str, ok: pd.DataFrame, profile: str, failed: int, folder: Path) -> tuple[list[Table], list[Path]]:
    ok = ok.assign(column=_column_label(ok))
    classes = {int(c) for c in ok["num_classes"].dropna()}
    chance = "; ".join(f"{100 / c:.1f}% ({c} classes)" for c in sorted(classes)) or "unknown"
    dataset = ok["dataset"].dropna().iloc[0] if ok["dataset"].notna().any() else None
    if all(follows_profile(dataset, r.model, profile, r.settings) for r in ok.itertuples()):
        scaling = profile_description(dataset, profile)
    else:  # records of an older suite definition or custom specs: the caption must not claim it
        scaling = f"{profile}, with the settings of the settings table (not this version's {profile} definition)"
    caption = (
        f"{suite}: test accuracy (%) at the evaluation rate, mean ± std over seeds (n runs); "
        f"best mean in bold. Chance level: {chance}. Profile {scaling}; each model's settings are in "
        f"the settings table.{_time_note(ok)} Model selection on validation at the training rate: "
        "the honest protocol, which never sees the shifted rate before the test."
    )
    tables = [pivot_table(ok, "test_acc", row="model", column="column", scale=100, caption=caption)]
    reference = ok.dropna(subset=["test_acc_eval_selected"])
    if not reference.empty:
        tables.append(pivot_table(
            reference, "test_acc_eval_selected", row="model", column="column", scale=100,
            caption=f"{suite}: reference protocol (selection at the evaluation rate): test accuracy (%) of "
                    "the weights from the epoch with the best validation accuracy at the EVALUATION rate. "
                    "The references validate at the evaluation rate (hippo-code datasets/uea.py subsamples "
                    "validation at eval_hz); the Neural CDE experiments keep the best such epoch, checked "
                    "every 10 epochs, and hippo-code logs test accuracy every epoch without a selection "
                    "rule. Every epoch is a candidate here. It peeks at the shifted distribution, so it is "
                    "optimistic; same training runs as the table above; mean ± std over seeds (n runs).",
        ))  # fmt: skip
    # Accuracy at the training rate (from the rate curve) says whether a model learned the task at
    # all, so the tables above separate "did not learn" from "did not transfer to the new rate".
    at_train = [
        (r.rate_curve or {}).get(str(float(r.train_hz))) if pd.notna(r.train_hz) else None
        for r in ok.itertuples()
    ]
    ok = ok.assign(acc_train_rate=at_train)
    if any(v is not None for v in at_train):
        same_rate = ok.dropna(subset=["acc_train_rate"])
        tables.append(pivot_table(
            same_rate, "acc_train_rate", row="model", column="column", scale=100,
            caption=f"{suite}: test accuracy (%) at the TRAINING rate (no shift), for reference; "
                    f"mean ± std over seeds (n runs). Profile: {profile}.{_time_note(ok)}",
        ))  # fmt: skip
    partial = ok.dropna(subset=["test_examples", "test_size"])
    partial = partial[partial["test_examples"] < partial["test_size"]]
    if len(partial):
        low, high, size = (int(v) for v in (partial["test_examples"].min(), partial["test_examples"].max(),
                                            partial["test_size"].max()))  # fmt: skip
        seen = f"{low}" if low == high else f"{low}-{high}"
        tables[0].notes.append(f"Test accuracy of {len(partial)} run(s) on the first {seen} of {size} test "
                               "examples only (the profile limits evaluation batches).")  # fmt: skip
    copies = ok[ok["reused_from"].notna()]
    if len(copies):
        models = ", ".join(dict.fromkeys(copies["model"]))
        tables[0].notes.append(
            f"{len(copies)} run(s) of {models} are the computation of another condition's run (the "
            "conditions differ only in what these models ignore, e.g. the clock's scale for a model "
            "with time_scale_invariant), so they repeat its results: the same computation up to float "
            "rounding, not an independent replicate.")  # fmt: skip
    if failed:
        tables[0].notes.append(f"Failed runs (not in the table): {failed}.")
    if (note := _older_code_note(ok)) is not None:
        tables[0].notes.append(note)
    if profile == "paper" and (table := published_table(suite, ok)) is not None:
        tables.append(table)
    tables.append(settings_table(ok))
    paths = []
    title = f"{suite}, {_profile_title(ok, profile)}"
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * ok["model"].nunique() + 2), 4.4))
    models, columns = list(dict.fromkeys(ok["model"])), list(dict.fromkeys(ok["column"]))
    sns.barplot(data=ok.assign(acc=ok["test_acc"] * 100), x="model", y="acc", hue="column", ax=ax,
                errorbar="sd", order=models, hue_order=columns)  # fmt: skip
    for c in sorted(classes):
        ax.axhline(100 / c, ls=":", color="black", lw=1, label=f"chance ({100 / c:.0f}%)")
    if profile == "paper":  # the published number on its bar
        source = dict(zip(ok["column"], zip(ok["dataset"], ok["condition"], strict=True), strict=True))
        width = 0.8 / len(columns)
        marks = [(i - 0.4 + (j + 0.5) * width, anchor.mean) for i, m in enumerate(models)
                 for j, c in enumerate(columns) if (anchor := published_anchor(*source[c], m)) is not None]  # fmt: skip
        if marks:
            ax.scatter(*zip(*marks, strict=True), marker="_", s=400, linewidths=2.5, color="black", zorder=5,
                       label="published")  # fmt: skip
    ax.set_ylabel("test accuracy (%)")
    ax.set_xlabel("")
    ax.tick_params(axis="x", rotation=45)
    ax.set_title(f"{title}\nselection at the training rate; bars: mean over seeds, error bars: ± 1 sd", fontsize=9)
    ax.legend(title="", fontsize=8)
    paths += _save(fig, folder, "accuracy")

    curve = [
        {"model": r.model, "column": r.column, "seed": r.seed, "rate": float(rate), "acc": acc * 100}
        for r in ok.itertuples() for rate, acc in r.rate_curve.items() if acc is not None
    ]  # fmt: skip
    if curve:
        grid = sns.relplot(data=pd.DataFrame(curve), x="rate", y="acc", hue="model", col="column",
                           kind="line", marker="o", errorbar="sd", height=3.5)  # fmt: skip
        grid.set_axis_labels("test rate (fraction of the source rate)", "test accuracy (%)")
        grid.set_titles("trained {col_name}")
        # The dashed line marks the rate the model was trained at: the curve's peak should sit there.
        train_rates = ok.dropna(subset=["train_hz"]).groupby("column")["train_hz"].first()
        for name, ax in grid.axes_dict.items():
            if name in train_rates:
                ax.axvline(train_rates[name], ls="--", color="grey", lw=1)
                ax.text(train_rates[name], 50, "training rate ", rotation=90, ha="right", va="center",
                        fontsize=7, color="grey")  # fmt: skip
            for c in sorted(classes):
                ax.axhline(100 / c, ls=":", color="black", lw=1)
                ax.text(ax.get_xlim()[0], 100 / c, f" chance ({100 / c:.0f}%)", va="bottom", fontsize=7)
        sns.move_legend(grid, "upper left", bbox_to_anchor=(1.0, 0.95))
        grid.figure.suptitle(f"{title}: selection at the training rate; lines: mean over seeds, bands: ± 1 sd",
                             fontsize=9, y=1.04)  # fmt: skip
        paths += _save(grid.figure, folder, "accuracy_vs_rate")

    paths += learning_curves(ok, folder)
    speed = ok.dropna(subset=["train_samples_per_s"])
    if not speed.empty:
        fig, ax = plt.subplots(figsize=(6, 4))
        sns.scatterplot(data=speed.assign(acc=speed["test_acc"] * 100), x="train_samples_per_s", y="acc",
                        hue="model", style="column", ax=ax)  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("training throughput (samples/s)")
        ax.set_ylabel("test accuracy (%)")
        paths += _save(fig, folder, "accuracy_vs_throughput")
    return tables, paths


# History keys of validation accuracy, and how the learning-curve plot names them.
VALIDATION_CURVES = {"val_acc_train_rate": "training rate", "val_acc_eval_rate": "evaluation rate",
                     "val_acc": "validation"}  # fmt: skip


def _profile_title(ok: pd.DataFrame, profile: str) -> str:
    """The profile in a figure title: ``quick profile (8 epochs)``, ``paper profile``."""
    epochs = sorted({int(s["epochs"]) for s in ok["settings"] if s.get("epochs") is not None})
    shown = f"{epochs[0]}" if len(epochs) == 1 else f"{epochs[0]}-{epochs[-1]}" if epochs else "?"
    return f"{profile} profile ({shown} epochs)" if profile != "paper" else f"paper profile (up to {shown} epochs)"


def learning_curves(ok: pd.DataFrame, folder: Path) -> list[Path]:
    """Validation accuracy per epoch at both rates, per model and condition (mean and sd over seeds)."""
    points = [
        {"model": r.model, "column": r.column, "seed": r.seed, "epoch": entry["epoch"] + 1,
         "rate": name, "acc": entry[key] * 100}
        for r in ok.itertuples() for entry in r.history for key, name in VALIDATION_CURVES.items()
        if entry.get(key) is not None and not math.isnan(entry[key])
    ]  # fmt: skip
    if not points:
        return []
    grid = sns.relplot(data=pd.DataFrame(points), x="epoch", y="acc", hue="model", style="rate", col="column",
                       kind="line", errorbar="sd", height=3.5)  # fmt: skip
    grid.set_axis_labels("epoch", "validation accuracy (%)")
    grid.set_titles("{col_name}")
    sns.move_legend(grid, "upper left", bbox_to_anchor=(1.0, 0.95))
    grid.figure.suptitle("validation accuracy per validated epoch at both rates; lines: mean over seeds, "
                         "bands: ± 1 sd", fontsize=9, y=1.04)  # fmt: skip
    return _save(grid.figure, folder, "learning_curves")


def funcapprox_report(suite: str, ok: pd.DataFrame, profile: str, failed: int, folder: Path) -> tuple[list[Table], list[Path]]:
    ok = ok.assign(measure=ok["model"], column="N=" + ok["N"].astype(int).astype(str))
    ok = ok.sort_values("N", kind="stable")
    mse = pivot_table(ok, "mse", row="measure", column="column", fmt=".3g", higher_is_better=False,
                      caption=f"{suite}: reconstruction MSE over the whole history, mean ± std over seeds (n); "
                              f"lowest in bold. Profile: {profile}.")  # fmt: skip
    speed = pivot_table(ok, "steps_per_s", row="measure", column="column", fmt=".3g",
                        caption=f"{suite}: online update speed (steps/s); highest in bold. Profile: {profile}.")  # fmt: skip
    if failed:
        mse.notes.append(f"Failed runs (not in the table): {failed}.")
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.lineplot(data=ok, x="N", y="mse", hue="measure", marker="o", errorbar="sd", ax=ax)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_ylabel("reconstruction MSE")
    return [mse, speed], _save(fig, folder, "mse_vs_n")


def throughput_report(suite: str, ok: pd.DataFrame, profile: str, failed: int, folder: Path) -> tuple[list[Table], list[Path]]:
    measures = ["train_samples_per_s", "infer_samples_per_s", "train_steps_per_s", "infer_steps_per_s"]
    # streaming inference (one step at a time through the model's recurrent form), where it has one
    measures += [m for m in ("stream_samples_per_s", "stream_steps_per_s") if ok[m].notna().any()]
    long = ok.melt(id_vars=["model", "seed", *(["marks"] if "marks" in ok else [])], value_name="value",
                   var_name="measure", value_vars=measures)  # fmt: skip
    speed = pivot_table(long, "value", row="model", column="measure", fmt=".4g",
                        caption=f"{suite}: throughput (median of timed iterations), mean ± std over seeds (n); "
                                f"fastest in bold. Condition: {', '.join(dict.fromkeys(ok['condition']))}. "
                                f"Profile: {profile}.")  # fmt: skip
    mem = ok.assign(peak_mb=(ok["peak_memory_bytes"].fillna(ok["peak_rss_bytes"])) / 2**20,
                    memory="peak memory (MiB)", params="parameters")  # fmt: skip
    memory = pivot_table(mem, "peak_mb", row="model", column="memory", fmt=".1f", higher_is_better=False,
                         caption=f"{suite}: peak memory (CUDA max allocated; on CPU the process's peak RSS).")  # fmt: skip
    tables = [speed, memory]
    if ok["state_bytes_per_series"].notna().any():
        tables.append(pivot_table(ok.assign(state_kb=ok["state_bytes_per_series"] / 1024, memory="streaming state (KiB per series)"),
                            "state_kb", row="model", column="memory", fmt=".1f", higher_is_better=False,
                            caption=f"{suite}: memory of the streaming state per series: constant in the sequence length."))  # fmt: skip
    if failed:
        speed.notes.append(f"Failed runs (not in the table): {failed}.")
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * ok["model"].nunique() + 2), 4))
    sns.barplot(data=long[long["measure"].str.endswith("samples_per_s")], x="model", y="value", hue="measure", ax=ax)
    ax.set_yscale("log")
    ax.set_ylabel("samples/s")
    ax.tick_params(axis="x", rotation=45)
    return tables, _save(fig, folder, "throughput")


def reported_records(recs: Sequence[RunRecord]) -> tuple[set[str], set[str]]:
    """``(ids the reports use, ids among them from an older model code or harness)``: per
    profile, the records :func:`select_records` keeps that finished ok."""
    if not recs:
        return set(), set()
    frame = records_frame(recs)
    used: set[str] = set()
    stale: set[str] = set()
    for profile in dict.fromkeys(frame["profile"]):
        chosen = select_records(frame, profile)[0]
        chosen = chosen[chosen["status"] == "ok"]
        used |= set(chosen["id"])
        stale |= set(chosen["id"][~_is_current(chosen)])
    return used, stale


def write_report(results_dir: str | Path, suite: str, profile: str | None = None) -> list[Path]:
    """Write ``table.md``, ``table.tex`` and plots for ``suite`` from its records; return the paths."""
    recs = records.load_records(results_dir, suite)
    if not recs:
        folder = records.suite_dir(results_dir, suite) / "records"
        raise NoRecordsError(f"no records for suite {suite!r} in {folder}; run it first: python -m bench run --suite {suite}")
    frame, profile = select_records(records_frame(recs), profile)
    ok = frame[frame["status"] == "ok"]
    failed = int((frame["status"] != "ok").sum())
    if ok.empty:
        raise NoRecordsError(f"all {failed} runs of suite {suite!r} ({profile}) failed; see the records' errors")
    folder = records.suite_dir(results_dir, suite)
    marks, unknown = record_marks(ok, folder)
    ok = ok.assign(marks=marks)
    tables, paths = get_task(ok["task"].iloc[0]).load("report")(suite, ok, profile, failed, folder)
    if unknown:
        tables[0].notes.append(f"Commits not checked against HEAD: git cannot tell in {folder} (no git, or "
                               "not in a repository); records of other commits would be marked §.")  # fmt: skip
    md, tex = folder / "table.md", folder / "table.tex"
    records.write_atomic(md, "\n".join(to_markdown(t) for t in tables))
    records.write_atomic(tex, "\n".join(to_latex(t) for t in tables))
    return [md, tex, *paths]
