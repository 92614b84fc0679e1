"""Regression detection across runs: ``python -m bench compare --baseline DIR [DIR ...] --candidate DIR``.

A DIR is a results directory (``<suite>/records/*.json``) or one suite's directory
(``records/*.json``). Several ``--baseline`` directories are a history (say the last nightlies):
the candidate is compared with their median, so one odd night does not move the reference.

Matching. Runs are grouped by their spec without the seed (every other field of
:class:`bench.records.RunSpec` must be equal: suite, task, dataset, condition, model, profile,
data, train and model arguments) and by the *machine kind* they ran on: device name, torch
version and CUDA version from the record's ``environment``. Groups are compared within one
machine kind. A spec present on both sides but only on different machine kinds still has its
accuracy compared (it does not depend on the machine beyond float rounding), against the
baseline's runs on every machine kind; its throughput and memory are not, and it is listed as
*not comparable* for them. A spec present on one side only is listed as such. Neither is an
error. Only
records with status ``ok`` are compared (the latest per spec and seed in each directory); the
candidate's failed runs are listed.

What is compared, per group (``kind``: metric):

- ``accuracy``: ``metrics.test_acc`` (and ``test_acc_eval_selected``, the reference selection,
  where records have it). Candidate mean over seeds against the baseline: the mean
  over seeds of each baseline directory, then the median of those means. Flagged when the
  difference exceeds ``sigmas`` (default 2) pooled standard deviations, where the pooled
  standard deviation is that of single runs, pooled over the seed groups of the candidate and
  of every baseline directory (``sqrt(sum((n_i - 1) s_i^2) / sum(n_i - 1))``). The threshold has a
  floor (default 0.5 percentage points): with one seed per side there is no variance estimate,
  and without the floor any change, however small, would flag. For function approximation the
  accuracy is ``metrics.mse`` (the reconstruction error, lower is better): a ratio of medians as
  for throughput, a regression when higher by more than ``factor``. It is deterministic for a
  seed on one machine kind, so any real change in the operators shows.
- ``throughput``: ``throughput.train_samples_per_s``, ``throughput.infer_samples_per_s`` and (for
  function approximation) ``metrics.steps_per_s``. Ratio of the candidate's median over seeds to
  the median of the baseline directories' medians; a regression when slower by more than
  ``factor`` (default 1.1: ratio below 1/1.1).
- ``memory``: the record's ``peak_memory_bytes`` (CUDA peak allocated during training, or during
  the throughput phase for throughput-only runs; None on CPU, so CPU records have no memory
  comparison). Same ratio rule, a regression when higher by more than ``factor``. Memory is a
  kind of its own, so ``--fail-on throughput`` can ignore it; the default fails on all three.

Changes beyond the threshold in the good direction are reported as improvements and never fail.
A comparison that compared no metric at all says so in its first line, and why (no spec on both
sides, machines differ, ...). Exit code of :func:`compare_main`: 1 when a regression of a kind in
``--fail-on`` was found, or when nothing was compared and ``--fail-on`` names any kind (a check
that checked nothing must not pass), else 0; bad input raises :class:`CompareError` (a ``ValueError``), which the CLI prints as one line
``bench: error: ...`` with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.records import RunRecord, canonical_json, load_record, write_atomic
from bench.tasks import CompareMetric, compare_metrics

KINDS = ("accuracy", "throughput", "memory")


class CompareError(ValueError):
    """Bad input to a comparison (missing directory, no records, bad option); one line for the user."""


# --- what is compared ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CompareOptions:
    """Thresholds and which kinds of regression fail the exit code.

    ``accuracy_floor`` is in accuracy units (fractions: 0.005 = 0.5 percentage points).
    ``suites``: compare only these suites (None: every suite found).
    """

    factor: float = 1.1
    sigmas: float = 2.0
    accuracy_floor: float = 0.005
    fail_on: tuple[str, ...] = KINDS
    suites: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.factor) and self.factor >= 1.0):
            raise CompareError(f"factor must be a number >= 1 (1.1 = 10%), got {self.factor!r}")
        if not (math.isfinite(self.sigmas) and self.sigmas >= 0.0):
            raise CompareError(f"sigmas must be a number >= 0, got {self.sigmas!r}")
        if not (math.isfinite(self.accuracy_floor) and self.accuracy_floor >= 0.0):
            raise CompareError(f"accuracy floor must be a number >= 0, got {self.accuracy_floor!r}")
        unknown = sorted(set(self.fail_on) - set(KINDS))
        if unknown:
            raise CompareError(f"unknown kind {', '.join(unknown)} in fail-on; valid: {', '.join(KINDS)}")


# --- records, machine kinds and groups ----------------------------------------------------------


@dataclass(frozen=True)
class MachineKind:
    """Records are comparable only when made on the same device with the same torch and CUDA."""

    device_name: str | None
    torch: str | None
    cuda: str | None

    @classmethod
    def of(cls, record: RunRecord) -> MachineKind:
        env = record.environment or {}
        return cls(env.get("device_name"), env.get("torch"), env.get("cuda"))

    def __str__(self) -> str:
        return f"{self.device_name or 'unknown device'}, torch {self.torch or '?'}, CUDA {self.cuda or 'none'}"


@dataclass
class Group:
    """The runs of one spec (all seeds) on one machine kind in one directory."""

    suite: str
    model: str
    condition: str
    profile: str
    machine: MachineKind
    seeds: list[int] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)  # metric name -> one value per run


GroupKey = tuple[str, MachineKind]  # (spec without seed as canonical JSON, machine kind)


@dataclass
class LoadedRuns:
    """One directory's records: groups of finished runs, failed runs, and notes on skipped files."""

    path: Path
    groups: dict[GroupKey, Group]
    failed: list[RunRecord]
    notes: list[str]


def spec_key(record: RunRecord) -> str:
    """The record's spec without the seed, as canonical JSON: the runs one group pools.

    The accelerator (``train.accelerator``, in the run id so that CPU records never resume GPU
    runs) is left out too: the machine kind keeps CPU and GPU records apart, and GPU history
    from before it joined the id stays comparable.
    """
    spec = record.spec.to_dict()
    spec.pop("seed", None)
    spec["train"] = {k: v for k, v in spec.get("train", {}).items() if k != "accelerator"}
    return canonical_json(spec)


def record_files(directory: str | Path) -> list[Path]:
    """Record files of a results directory (``<suite>/records/*.json``) or a suite directory."""
    path = Path(directory)
    if not path.is_dir():
        raise CompareError(f"{str(path)!r} is not a directory")
    files = sorted(path.glob("records/[!.]*.json")) + sorted(path.glob("*/records/[!.]*.json"))
    if not files:
        raise CompareError(
            f"no run records in {str(path)!r} (expected <suite>/records/*.json or records/*.json)"
        )
    return files


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def load_runs(directory: str | Path, suites: Sequence[str] | None = None) -> LoadedRuns:
    """Read every record under ``directory`` and group the finished ones by spec and machine kind.

    Per spec, seed and machine kind the record finished last wins (a directory that was rerun
    after a code change holds both). Unreadable files are skipped with a note, and so are copies
    of another condition's run (``reused_from``): its own record is compared, once.
    """
    latest: dict[tuple[str, int, MachineKind], RunRecord] = {}
    failed: list[RunRecord] = []
    notes: list[str] = []
    for path in record_files(directory):
        try:
            record = load_record(path)
        except (ValueError, KeyError, TypeError) as e:  # JSONDecodeError is a ValueError
            notes.append(f"skipped unreadable record {path}: {e}")
            continue
        if suites is not None and record.spec.suite not in suites:
            continue
        if record.reused_from is not None:
            continue
        if record.status != "ok":
            failed.append(record)
            continue
        key = (spec_key(record), record.spec.seed, MachineKind.of(record))
        if key not in latest or (record.finished_at or "") >= (latest[key].finished_at or ""):
            latest[key] = record
    groups: dict[GroupKey, Group] = {}
    metrics = compare_metrics()  # once, not per record
    for (skey, seed, machine), record in sorted(latest.items(), key=lambda kv: kv[0][1]):
        s = record.spec
        group = groups.setdefault(
            (skey, machine), Group(s.suite, s.model, s.condition, s.profile, machine)
        )
        group.seeds.append(seed)
        for metric in metrics:
            value = _number(metric.read(record))
            if value is not None:
                group.values.setdefault(metric.name, []).append(value)
    return LoadedRuns(Path(directory), groups, failed, notes)


def history_dirs(root: str | Path, *, exclude: str | Path | None = None, keep: int = 7) -> list[Path]:
    """The last ``keep`` run directories under ``root`` that hold records, ``exclude`` left out.

    Sorted by name, so dated directories (``YYYY-MM-DD``) come in time order. Hidden directories
    and directories without records (a night that crashed early) are skipped. A missing ``root``
    gives an empty list: the first nightly has no history.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    skip = Path(exclude).resolve() if exclude is not None else None
    found = []
    for path in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if path.resolve() == skip:
            continue
        try:
            record_files(path)
        except CompareError:
            continue
        found.append(path)
    return found[-keep:] if keep > 0 else []


# --- the comparison -----------------------------------------------------------------------------


@dataclass
class Finding:
    """One metric of one group compared.

    ``baseline`` and ``candidate`` are in the metric's units (accuracy as a fraction, MSE,
    samples/s, bytes). ``change`` is ``candidate - baseline`` for test accuracy (``relative``
    False) and ``candidate / baseline`` for the rest; ``threshold`` is the allowed absolute
    accuracy change, or the factor.
    """

    kind: str
    suite: str
    model: str
    condition: str
    metric: str
    baseline: float
    candidate: float
    change: float
    threshold: float
    regressed: bool
    improved: bool = False
    relative: bool = True  # change is candidate / baseline (False: candidate - baseline)
    profile: str = ""
    machine: str = ""
    candidate_runs: int = 0
    baseline_runs: int = 0
    baseline_dirs: int = 0


@dataclass(frozen=True)
class GroupRef:
    """A group named in the report without numbers: one side only, or failed."""

    suite: str
    model: str
    condition: str
    profile: str
    machine: str
    seeds: tuple[int, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class NotComparable:
    """A candidate group whose spec has baseline runs, but none on the candidate's machine kind."""

    suite: str
    model: str
    condition: str
    profile: str
    candidate_machine: str
    baseline_machines: tuple[str, ...]


def pooled_std(samples: Iterable[Sequence[float]]) -> float:
    """Standard deviation of single runs pooled over groups; 0.0 when no group has two runs."""
    dof = 0
    total = 0.0
    for values in samples:
        if len(values) >= 2:
            dof += len(values) - 1
            total += (len(values) - 1) * statistics.variance(values)
    return math.sqrt(total / dof) if dof else 0.0


def compare_metric(
    metric: CompareMetric, candidate: Sequence[float], baselines: Sequence[Sequence[float]], options: CompareOptions
) -> tuple[float, float, float, float, bool, bool] | None:
    """``(baseline, candidate, change, threshold, regressed, improved)``; None if not comparable.

    ``baselines`` holds one list of values per baseline directory.
    """
    baselines = [b for b in baselines if b]
    if not candidate or not baselines:
        return None
    if not metric.relative:
        base = statistics.median(statistics.fmean(b) for b in baselines)
        cand = statistics.fmean(candidate)
        threshold = max(options.sigmas * pooled_std([candidate, *baselines]), options.accuracy_floor)
        change = cand - base
        return base, cand, change, threshold, change < -threshold, change > threshold
    base = statistics.median(statistics.median(b) for b in baselines)
    cand = statistics.median(candidate)
    if base <= 0:
        return None
    change = cand / base
    lower, higher = change < 1 / options.factor, change > options.factor
    if metric.lower_is_better:
        return base, cand, change, options.factor, higher, lower
    return base, cand, change, options.factor, lower, higher


def _ref(group: Group, note: str = "") -> GroupRef:
    return GroupRef(group.suite, group.model, group.condition, group.profile, str(group.machine),
                    tuple(group.seeds), note)  # fmt: skip


def _failed_ref(record: RunRecord) -> GroupRef:
    s = record.spec
    reason = (record.error or "").strip().split("\n")[0][:200]
    note = f"{record.status}: {reason}" if reason else record.status
    return GroupRef(s.suite, s.model, s.condition, s.profile, str(MachineKind.of(record)), (s.seed,), note)


def _sort_key(item: Any) -> tuple:
    return (item.suite, item.model, item.condition, item.profile)


def compare_runs(baselines: Sequence[LoadedRuns], candidate: LoadedRuns, options: CompareOptions) -> ComparisonReport:
    """Compare loaded runs (see the module docstring for the rules)."""
    cand_by_spec: dict[str, list[MachineKind]] = {}
    for skey, machine in candidate.groups:
        cand_by_spec.setdefault(skey, []).append(machine)
    base_by_spec: dict[str, dict[MachineKind, list[Group]]] = {}
    for loaded in baselines:
        for (skey, machine), group in loaded.groups.items():
            base_by_spec.setdefault(skey, {}).setdefault(machine, []).append(group)

    report = ComparisonReport(
        baseline_dirs=[str(b.path) for b in baselines], candidate_dir=str(candidate.path), options=options,
        notes=[n for loaded in (*baselines, candidate) for n in loaded.notes],
        failed=sorted((_failed_ref(r) for r in candidate.failed), key=_sort_key),
    )  # fmt: skip
    for skey, machines in cand_by_spec.items():
        base_machines = base_by_spec.get(skey, {})
        for machine in machines:
            group = candidate.groups[(skey, machine)]
            if machine in base_machines:
                report.findings.extend(_compare_group(group, base_machines[machine], options))
            elif not base_machines:
                report.only_candidate.append(_ref(group))
            else:  # the spec has a baseline, but made on another kind of machine: accuracy only
                others = [g for groups in base_machines.values() for g in groups]
                report.findings.extend(_compare_group(group, others, options, kinds=("accuracy",),
                                                      machine=f"{machine} vs other machines"))  # fmt: skip
                report.not_comparable.append(NotComparable(
                    group.suite, group.model, group.condition, group.profile, str(machine),
                    tuple(sorted(map(str, base_machines)))))  # fmt: skip
    for skey, by_machine in base_by_spec.items():
        if skey not in cand_by_spec:
            for groups in by_machine.values():
                note = f"in {len(groups)} of {len(baselines)} baseline dirs" if len(baselines) > 1 else ""
                report.only_baseline.append(_ref(groups[-1], note))
    for items in (report.findings, report.only_candidate, report.only_baseline, report.not_comparable):
        items.sort(key=_sort_key)
    return report


def _compare_group(group: Group, baselines: list[Group], options: CompareOptions,
                   kinds: tuple[str, ...] = KINDS, machine: str | None = None) -> list[Finding]:
    """The metrics of ``kinds`` of one candidate group against its baseline groups (one per
    baseline directory and machine kind)."""
    findings = []
    for metric in compare_metrics():
        if metric.kind not in kinds:
            continue
        base_values = [b.values.get(metric.name, []) for b in baselines]
        result = compare_metric(metric, group.values.get(metric.name, []), base_values, options)
        if result is None:
            continue
        base, cand, change, threshold, regressed, improved = result
        findings.append(Finding(
            metric.kind, group.suite, group.model, group.condition, metric.name, base, cand, change,
            threshold, regressed, improved, metric.relative, group.profile, machine or str(group.machine),
            candidate_runs=len(group.values[metric.name]),
            baseline_runs=sum(len(v) for v in base_values), baseline_dirs=sum(1 for v in base_values if v),
        ))  # fmt: skip
    return findings


def compare_dirs(
    baseline_dirs: Sequence[str | Path], candidate_dir: str | Path, options: CompareOptions | None = None
) -> ComparisonReport:
    """Load the directories and compare; :class:`CompareError` on a missing or empty directory.

    A baseline directory that is the candidate itself is left out (with a note), so a glob over a
    history root may include today's directory.
    """
    options = options or CompareOptions()
    candidate_path = Path(candidate_dir)
    candidate = load_runs(candidate_path, options.suites)
    notes = []
    baselines = []
    for d in baseline_dirs:
        if Path(d).resolve() == candidate_path.resolve():
            notes.append(f"baseline {str(d)!r} is the candidate; left out")
            continue
        baselines.append(load_runs(d, options.suites))
    if not baselines:
        raise CompareError("no baseline directory to compare with (give --baseline DIR ...)")
    report = compare_runs(baselines, candidate, options)
    report.notes[:0] = notes
    return report


# --- the report ---------------------------------------------------------------------------------


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ") or "—"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def format_value(kind: str, value: float, metric: str = "") -> str:
    """Accuracy in percent (an MSE as it is), throughput per second, memory in MiB."""
    if metric == "mse":
        return f"{value:.3g}"
    if kind == "accuracy":
        return f"{100 * value:.2f}%"
    if kind == "memory":
        return f"{value / 2**20:,.1f} MiB"
    return f"{value:,.0f}/s" if abs(value) >= 100 else f"{value:.3g}/s"


def format_change(finding: Finding) -> tuple[str, str]:
    """The change and its threshold as text: ``+1.20 pp`` / ``±0.50 pp``, ``×0.80 (-20.0%)`` / ``×1.10``."""
    if not finding.relative:
        return f"{100 * finding.change:+.2f} pp", f"±{100 * finding.threshold:.2f} pp"
    return f"×{finding.change:.3f} ({100 * (finding.change - 1):+.1f}%)", f"×{finding.threshold:g}"


@dataclass
class ComparisonReport:
    """Everything a comparison found; :meth:`to_markdown` for people, :meth:`exit_code` for CI."""

    baseline_dirs: list[str]
    candidate_dir: str
    options: CompareOptions = field(default_factory=CompareOptions)
    findings: list[Finding] = field(default_factory=list)
    only_candidate: list[GroupRef] = field(default_factory=list)
    only_baseline: list[GroupRef] = field(default_factory=list)
    not_comparable: list[NotComparable] = field(default_factory=list)
    failed: list[GroupRef] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def regressions(self, kinds: str | Iterable[str] = KINDS) -> list[Finding]:
        """Regressions of ``kinds`` (one kind or several)."""
        kinds = {kinds} if isinstance(kinds, str) else set(kinds)
        return [f for f in self.findings if f.regressed and f.kind in kinds]

    def improvements(self) -> list[Finding]:
        return [f for f in self.findings if f.improved]

    def exit_code(self, fail_on: Iterable[str] | None = None) -> int:
        """1 if a regression of a kind in ``fail_on`` (default: the options' ``fail_on``) was
        found, or if nothing at all was compared while ``fail_on`` names a kind."""
        kinds = tuple(self.options.fail_on if fail_on is None else fail_on)
        return 1 if self.regressions(kinds) or (kinds and not self.findings) else 0

    def nothing_compared(self) -> str | None:
        """Why no metric was compared (one sentence), or None when some were."""
        if self.findings:
            return None
        reasons = []
        if self.not_comparable:
            machines = sorted({n.candidate_machine for n in self.not_comparable})
            base = sorted({m for n in self.not_comparable for m in n.baseline_machines})
            reasons.append(f"{len(self.not_comparable)} run group(s) ran on other machines (candidate "
                           f"{'; '.join(machines)}; baseline {'; '.join(base)}), so their throughput and memory "
                           "are skipped, and they have no accuracy metric to compare")  # fmt: skip
        if self.only_candidate or self.only_baseline:
            reasons.append(f"{len(self.only_candidate)} run group(s) only in the candidate and "
                           f"{len(self.only_baseline)} only in the baseline (no spec in common)")  # fmt: skip
        if self.failed and not reasons:
            reasons.append(f"the candidate's {len(self.failed)} run(s) failed")
        return "; ".join(reasons) or "the directories hold no finished runs to compare"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _finding_rows(self, findings: Sequence[Finding]) -> list[list[str]]:
        rows = []
        for f in findings:
            change, threshold = format_change(f)
            rows.append([f.kind, f.suite, f.model, f.condition, f.metric, format_value(f.kind, f.baseline, f.metric),
                         format_value(f.kind, f.candidate, f.metric), change, threshold,
                         f"{f.candidate_runs} / {f.baseline_runs} ({f.baseline_dirs} dirs)"])  # fmt: skip
        return rows

    def to_markdown(self) -> str:
        """A summary for the job log and an issue: verdict, regressions, improvements, unmatched runs."""
        o = self.options
        regressions = self.regressions()
        failing = self.regressions(o.fail_on)
        headers = ["kind", "suite", "model", "condition", "metric", "baseline", "candidate", "change",
                   "threshold", "runs (cand / base)"]  # fmt: skip
        lines = ["## Benchmark comparison", ""]
        if (why := self.nothing_compared()) is not None:
            verdict = "exit code 1: fail-on names " + ", ".join(o.fail_on) if o.fail_on else "does not fail: fail-on is none"
            lines.append(f"**Nothing compared: 0 metrics** ({verdict}). Why: {why}.")
        elif failing:
            counts = ", ".join(f"{k} {sum(f.kind == k for f in failing)}" for k in KINDS if any(f.kind == k for f in failing))
            lines.append(f"**REGRESSED: {len(failing)} regression(s)** ({counts}).")
        elif regressions:
            lines.append(f"**No failing regressions** ({len(regressions)} regression(s) of kinds not in fail-on: "
                         f"{', '.join(sorted({f.kind for f in regressions}))}).")  # fmt: skip
        else:
            lines.append("**No regressions.**")
        if self.findings and self.not_comparable:
            lines += ["", f"{len(self.not_comparable)} run group(s) ran on other machines than their baseline: "
                      "accuracy compared, throughput and memory skipped (see Not comparable)."]  # fmt: skip
        lines += [
            "",
            f"- candidate: `{self.candidate_dir}`",
            f"- baseline: {'median of ' if len(self.baseline_dirs) > 1 else ''}"
            + ", ".join(f"`{d}`" for d in self.baseline_dirs),
            f"- thresholds: accuracy {o.sigmas:g} pooled std (at least {100 * o.accuracy_floor:.2f} pp); "
            f"throughput, memory and MSE ×{o.factor:g}; exit code fails on: {', '.join(o.fail_on) or 'nothing'}",
            f"- compared: {len(self.findings)} metric(s); {len(self.improvements())} improvement(s); "
            f"{len(self.only_candidate)} only in candidate, {len(self.only_baseline)} only in baseline, "
            f"{len(self.not_comparable)} not comparable, {len(self.failed)} failed in candidate",
        ]  # fmt: skip
        if regressions:
            lines += ["", "### Regressions", "", *_table(headers, self._finding_rows(regressions))]
        if self.improvements():
            lines += ["", "### Improvements", "", *_table(headers, self._finding_rows(self.improvements()))]
        if self.failed:
            lines += ["", "### Failed in candidate", "",
                      *_table(["suite", "model", "condition", "seed", "status"],
                              ([r.suite, r.model, r.condition, ",".join(map(str, r.seeds)), r.note] for r in self.failed))]  # fmt: skip
        ref_headers = ["suite", "model", "condition", "profile", "seeds", "machine"]
        for title, refs in (("Only in candidate", self.only_candidate), ("Only in baseline", self.only_baseline)):
            if refs:
                rows = ([r.suite, r.model, r.condition, r.profile, ",".join(map(str, r.seeds)),
                         r.machine + (f" ({r.note})" if r.note else "")] for r in refs)  # fmt: skip
                lines += ["", f"### {title}", "", *_table(ref_headers, rows)]
        if self.not_comparable:
            rows = ([n.suite, n.model, n.condition, n.profile, n.candidate_machine,
                     "; ".join(n.baseline_machines)] for n in self.not_comparable)  # fmt: skip
            lines += ["", "### Not comparable for throughput and memory (different machine kind: device, torch, "
                      "CUDA; accuracy is compared)", "",
                      *_table(["suite", "model", "condition", "profile", "candidate machine", "baseline machine"], rows)]  # fmt: skip
        if self.findings:
            lines += ["", f"<details><summary>All {len(self.findings)} comparisons</summary>", "",
                      *_table(headers, self._finding_rows(self.findings)), "", "</details>"]  # fmt: skip
        if self.notes:
            lines += ["", "### Notes", "", *(f"- {n}" for n in self.notes)]
        return "\n".join(lines) + "\n"


# --- command line -------------------------------------------------------------------------------


def parse_fail_on(text: str) -> tuple[str, ...]:
    """``"accuracy,throughput"`` -> the kinds; ``all`` = every kind, ``none`` = never fail."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if names == ["all"]:
        return KINDS
    if names in (["none"], []):
        return ()
    unknown = sorted(set(names) - set(KINDS))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown kind {', '.join(unknown)}; valid: {', '.join(KINDS)}, all, none"
        )
    return tuple(k for k in KINDS if k in names)


def _suites(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def add_compare_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``compare`` options to ``parser`` (a subparser of ``python -m bench``)."""
    parser.add_argument("--baseline", nargs="+", required=True, type=Path, metavar="DIR",
                        help="results or suite directories; several = a history, compared with their median")  # fmt: skip
    parser.add_argument("--candidate", required=True, type=Path, metavar="DIR", help="the run to check")
    parser.add_argument("--factor", type=float, default=1.1, metavar="F",
                        help="throughput/memory change that counts (default 1.1 = 10%%)")  # fmt: skip
    parser.add_argument("--sigmas", type=float, default=2.0, metavar="K",
                        help="accuracy change that counts, in pooled seed std (default 2)")  # fmt: skip
    parser.add_argument("--accuracy-floor", type=float, default=0.5, metavar="PP",
                        help="smallest accuracy change that counts, percentage points (default 0.5)")  # fmt: skip
    parser.add_argument("--fail-on", type=parse_fail_on, default=KINDS, metavar="KINDS",
                        help="kinds that make the exit code 1: accuracy,throughput,memory (default), all or none")  # fmt: skip
    parser.add_argument("--suites", type=_suites, metavar="A,B", help="compare only these suites (default: all)")
    parser.add_argument("--output", type=Path, metavar="FILE", help="also write the Markdown summary to FILE")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the findings as JSON to FILE")
    return parser


def compare_main(args: argparse.Namespace) -> int:
    """Run ``compare`` for parsed arguments: print the Markdown summary, return 1 on a regression.

    Raises :class:`CompareError` on bad input.
    """
    options = CompareOptions(factor=args.factor, sigmas=args.sigmas, accuracy_floor=args.accuracy_floor / 100,
                             fail_on=tuple(args.fail_on), suites=args.suites)  # fmt: skip
    report = compare_dirs(args.baseline, args.candidate, options)
    text = report.to_markdown()
    print(text, end="")
    for path, content in ((args.output, text), (args.json, json.dumps(report.to_dict(), indent=2, default=str))):
        if path is not None:
            try:
                write_atomic(Path(path), content)
            except OSError as e:
                raise CompareError(f"cannot write {str(path)!r}: {e.strerror or e}") from None
    return report.exit_code()


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point (``python -m bench.compare``), same options and exit codes."""
    parser = argparse.ArgumentParser(prog="python -m bench compare", description=__doc__.split("\n\n")[0])
    args = add_compare_arguments(parser).parse_args(argv)
    try:
        return compare_main(args)
    except CompareError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
