#!/usr/bin/env python
"""Mutation check of the harness tests: do they catch the bugs that would falsify a table?

Each mutant is one small, realistic bug in model selection, the rate change, the run id or the
missing-data drop. The tree (tracked and untracked files that git does not ignore, results/
included: a test reads the committed records) is copied once to a temporary folder; then, one
mutant at a time, its snippet is replaced there, the tests are run, and the file is restored.
A mutant is *caught* when pytest fails (exit code 1); it *survived* when the tests pass.

    python tools/mutation_check.py                 # each mutant against the test files of its kind
    python tools/mutation_check.py --full          # each against the whole default suite (minutes each)
    python tools/mutation_check.py --only S1,R1    # some of them; --list shows them all
    python tools/mutation_check.py --tree ../main  # another checkout's tests (missing files left out)

Exit code 0 when every mutant was caught and the unmutated copy passed, 1 otherwise. Not part
of CI (it reruns tests many times); run it after changing the tests or these code paths. A
mutant whose snippet is no longer in its file is reported as ``stale``: update its snippet.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SELECTION_TESTS = ("tests/bench/test_selection.py", "tests/bench/test_training.py", "tests/bench/test_runner.py")
RATE_TESTS = ("tests/bench/data", "tests/bench/test_training.py", "tests/bench/test_api.py")
RUN_ID_TESTS = ("tests/bench/test_records.py", "tests/bench/test_runner.py")
MISSING_TESTS = ("tests/bench/data",)


@dataclass(frozen=True)
class Mutant:
    key: str
    what: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTANTS = (
    # model selection
    Mutant("S1", "best weights not restored before the test: the last epoch is tested",
           "bench/training.py", "    load_weights(model, module.selection.path, device)\n    return module\n",
           "    return module\n", SELECTION_TESTS),
    Mutant("S2", "a tie goes to the latest epoch", "bench/training.py",
           "if value > self.best:", "if value >= self.best:", SELECTION_TESTS),
    Mutant("S3", "eval-selected weights not loaded: the training-rate weights are tested twice",
           "bench/training.py", "    load_weights(model, selection.path, device)\n    acc = ", "    acc = ",
           SELECTION_TESTS),
    Mutant("S4", "accuracy-versus-rate curve measured on the validation split", "bench/training.py",
           'data_module.eval_dataloader("test", rate)', 'data_module.eval_dataloader("val", rate)', SELECTION_TESTS),
    Mutant("S5", "honest selection on validation at the evaluation rate", "bench/training.py",
           'Selection(self.val_names[0], checkpoint_dir / "best.pt")',
           'Selection(self.val_names[-1], checkpoint_dir / "best.pt")', SELECTION_TESTS),
    # rates and clocks
    Mutant("R1", "stride int(1 / hz): rate 0.75 keeps the first 136 samples, 0.375 the first 135 / 2",
           "bench/data/uea.py", "return (np.arange(kept) // hz).astype(np.int64)",
           "return (np.arange(kept) * int(1 / hz)).astype(np.int64)", RATE_TESTS),
    Mutant("R2", "rate indices rounded instead of floored", "bench/data/uea.py",
           "return (np.arange(kept) // hz).astype(np.int64)",
           "return np.round(np.arange(kept) / hz).astype(np.int64)", RATE_TESTS),
    Mutant("R3", "kept length int(L * hz + 0.5) instead of int(L * hz)", "bench/data/uea.py",
           "    kept = int(length * hz)\n", "    kept = int(length * hz + 0.5)\n", RATE_TESTS),
    Mutant("R4", "test split on the training clock (timestamps suite)", "bench/data/uea.py",
           'time_scale = self.train_time_scale if split == "train" else self.eval_time_scale',
           "time_scale = self.train_time_scale", RATE_TESTS),
    # run ids
    Mutant("I1", "run id no longer depends on the harness version", "bench/records.py",
           '{"spec": spec.to_dict(), "code_version": code_version, "harness": HARNESS_VERSION}',
           '{"spec": spec.to_dict(), "code_version": code_version}', RUN_ID_TESTS),
    Mutant("I2", "run id ignores the model's code version", "bench/records.py",
           '{"spec": spec.to_dict(), "code_version": code_version, "harness": HARNESS_VERSION}',
           '{"spec": spec.to_dict(), "harness": HARNESS_VERSION}', RUN_ID_TESTS),
    Mutant("I3", "run id ignores model_args", "bench/records.py",
           '{"spec": spec.to_dict(), "code_version"',
           '{"spec": {k: v for k, v in spec.to_dict().items() if k != "model_args"}, "code_version"', RUN_ID_TESTS),
    Mutant("I4", "run id depends on dict key order", "bench/records.py",
           "json.dumps(obj, sort_keys=True, ", "json.dumps(obj, ", RUN_ID_TESTS),
    Mutant("I5", "an ok record of an older harness is reused (no id check on resume)", "bench/runner.py",
           'if record.status == "ok" and record.id == records.run_id(record.spec, _version(record.spec)):',
           'if record.status == "ok":', RUN_ID_TESTS),
    # the missing-data drop
    Mutant("M1", "time points dropped per channel, not all channels together", "bench/data/uea.py",
           '        row[torch.randperm(values.shape[1], generator=generator)[:n_drop]] = float("nan")\n',
           "        for channel in row.T:\n"
           '            channel[torch.randperm(values.shape[1], generator=generator)[:n_drop]] = float("nan")\n',
           MISSING_TESTS),
    Mutant("M2", "drop count round(L * rate) instead of int(L * rate)", "bench/data/uea.py",
           "n_drop = int(values.shape[1] * missing_rate)", "n_drop = round(values.shape[1] * missing_rate)",
           MISSING_TESTS),
    Mutant("M3", "generator re-seeded for every series: all series lose the same points", "bench/data/uea.py",
           "    for row in values:\n        row[torch.randperm",
           "    for row in values:\n        generator = torch.Generator().manual_seed(seed)\n        row[torch.randperm",
           MISSING_TESTS),
)


def copy_tree(source: Path, target: Path) -> None:
    """The files git tracks or would track (not ignored) under ``source``, copied to ``target``."""
    listed = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=source, check=True,
                            capture_output=True).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        src = source / name
        if src.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target / name)


def run_tests(tree: Path, tests: list[str], timeout: float) -> tuple[int, float, str]:
    """``(pytest exit code, seconds, output)`` of ``tests`` in ``tree``, with a fresh data cache
    (a processed-data cache from another mutant would hide a data-protocol bug)."""
    with tempfile.TemporaryDirectory(prefix="mutation-cache-") as cache:
        env = {**os.environ, "BENCH_CACHE_DIR": cache, "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONPATH": str(tree), "MPLBACKEND": "Agg"}  # fmt: skip
        env.setdefault("BENCH_DATA_DIR", str(ROOT.parent / "shared" / "data"))
        start = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                                  cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)  # fmt: skip
        except subprocess.TimeoutExpired:
            return -1, time.perf_counter() - start, "timed out"
        return proc.returncode, time.perf_counter() - start, proc.stdout + proc.stderr


def first_failure(output: str) -> str:
    match = re.search(r"^(?:FAILED|ERROR) (\S+)", output, re.MULTILINE)
    return match.group(1) if match else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="run the whole default suite for every mutant")
    parser.add_argument("--only", default="", help="comma-separated mutant keys (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per pytest run (default 1800)")
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout to copy (default: this one)")
    args = parser.parse_args(argv)
    wanted = [k for k in args.only.split(",") if k]
    unknown = set(wanted) - {m.key for m in MUTANTS}
    if unknown:
        parser.error(f"unknown mutant(s) {', '.join(sorted(unknown))}; valid: {', '.join(m.key for m in MUTANTS)}")
    mutants = [m for m in MUTANTS if not wanted or m.key in wanted]
    if args.list:
        for m in mutants:
            print(f"{m.key}  {m.path:22} {m.what}")
        return 0

    rows, ok = [], True
    with tempfile.TemporaryDirectory(prefix="mutation-check-") as tmp:
        tree = Path(tmp) / args.tree.resolve().name
        copy_tree(args.tree.resolve(), tree)

        def tests_of(m: Mutant) -> list[str]:
            return [] if args.full else [t for t in m.tests if (tree / t).exists()]

        suites = {tuple(tests_of(m)) for m in mutants}
        for tests in sorted(suites):  # the unmutated copy must pass what the mutants are run against
            rc, seconds, output = run_tests(tree, list(tests), args.timeout)
            print(f"baseline {' '.join(tests) or '(whole suite)'}: exit {rc} in {seconds:.0f} s", flush=True)
            if rc != 0:
                print(output[-3000:])
                return 1
        for m in mutants:
            path = tree / m.path
            original = path.read_text()
            if original.count(m.old) != 1:
                rows.append((m, "stale", 0.0, f"snippet found {original.count(m.old)} times in {m.path}"))
                ok = False
                continue
            path.write_text(original.replace(m.old, m.new))
            try:
                rc, seconds, output = run_tests(tree, tests_of(m), args.timeout)
            finally:
                path.write_text(original)
            result = {0: "SURVIVED", 1: "caught"}.get(rc, f"error (exit {rc})")
            ok &= rc == 1
            rows.append((m, result, seconds, first_failure(output)))
            print(f"{m.key} {result:9} {seconds:5.0f} s  {m.what}", flush=True)

    print("\n| mutant | bug put in | result | s | first failing test |\n|---|---|---|---|---|")
    for m, result, seconds, failure in rows:
        print(f"| {m.key} | {m.what} | {result} | {seconds:.0f} | {failure} |")
    caught = sum(r[1] == "caught" for r in rows)
    print(f"\n{caught} of {len(rows)} mutants caught ({'whole suite' if args.full else 'tests of their kind'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
