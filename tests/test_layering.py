"""The project's layering: no import cycles, no edge up a layer, and a light core.

The import graph is read from the sources: every ``import``, at module level or inside a
function, and every string that names a project module (``"bench.tasks.classification:TASK"``,
``"baselines.rnn"``: what a lazy registry or ``importlib`` imports later). So a dependency hidden
in a function-level import or in a string is an edge like any other.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "baselines", "hippo")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# A string naming a module, or a "module:attribute" target.
MODULE_STRING = re.compile(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?::[\w.]+)?")


def import_graph(strings: bool = True) -> dict[str, set[str]]:
    """module -> the project modules it imports (``from a import b`` counts ``a.b`` if a module),
    and with ``strings`` the modules its string constants name exactly."""
    files = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if strings and isinstance(node, ast.Constant) and isinstance(node.value, str):
                match = MODULE_STRING.fullmatch(node.value)
                if match and match.group(1) in files and match.group(1) != name:
                    graph[name].add(match.group(1))
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for target in targets:
                while target and target not in files:  # import a.b.c of a module a.b: the module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


# The layers, bottom to top: a module may import its own layer and the ones below, never above.
# A module belongs to the layer of the longest name that is it or a package holding it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("hippo",),  # the operators: torch only
    # what a model is written against, and the record schema: no other project import
    ("bench.registry", "bench.batch", "bench.settings", "bench.models.base", "bench.models.contract",
     "bench.models.registry", "bench.records", "bench.environment", "bench.published"),
    ("baselines",),  # every model: its class, its registration, its reference settings
    ("bench.models", "bench.data", "bench.plugins"),  # the built-in models' list; datasets; --include
    ("bench.profiles", "bench.progress", "bench.claims", "bench.throughput", "bench.training", "bench.reports"),
    ("bench.tasks",),  # one module per kind of run: its run, its report, its compared numbers
    ("bench.suites", "bench.suite_report", "bench.runner", "bench.executors", "bench.compare"),
    ("bench.api", "bench.nightly", "bench.cli", "bench.__main__", "bench"),
)  # fmt: skip


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of the longest entry that is ``module`` or a package of it."""
    found = [(len(entry), i) for i, names in enumerate(LAYERS) for entry in names
             if module == entry or module.startswith(entry + ".")]  # fmt: skip
    assert found, f"{module} is in no layer: add it to LAYERS"
    return max(found)[1]


def test_the_graph_is_read_from_the_sources():
    graph = import_graph()
    assert "bench.runner" in graph["bench.executors"]  # a module-level import
    assert "bench.api" in graph["bench.cli"]
    # edges hidden in strings: the lazy registries' "module:attr" and the built-in models' list
    assert "bench.tasks.classification" in graph["bench.tasks"]
    assert "baselines.rnn" in graph["bench.models"]
    assert "bench.tasks.classification" not in import_graph(strings=False)["bench.tasks"]


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_no_edge_runs_up_a_layer():
    graph = import_graph()
    upward = sorted(f"{m} (layer {layer_of(m)}) -> {t} (layer {layer_of(t)})" for m, targets in graph.items()
                    for t in targets if layer_of(t) > layer_of(m))  # fmt: skip
    assert not upward, "\n".join(upward)


def test_bench_holds_no_model_class():
    import torch

    from bench.models import get_model_entry, list_models

    for name in list_models():
        cls = get_model_entry(name).load()
        assert issubclass(cls, torch.nn.Module) and cls.__module__.startswith("baselines."), (name, cls.__module__)


def test_a_cycle_is_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", ["bench.batch", "bench.models.base", "bench.models", "baselines.rnn"])
def test_the_core_imports_without_lightning_sklearn_or_the_data_readers(module):
    code = (f"import sys, {module}; heavy = [m for m in ('lightning', 'sklearn', 'bench.data.uea', "
            "'bench.data.mnist', 'pandas') if m in sys.modules]; assert not heavy, heavy")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize("path", sorted((ROOT / "benchmarks").glob("*.py")), ids=lambda p: p.name)
def test_every_benchmark_module_imports(path):
    # the benchmarks run only under -m benchmark (tox -e bench): at least their imports stay true
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"benchmarks_{path.stem}", path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


def test_baselines_do_not_import_the_data_layer():
    graph = import_graph()
    offenders = {m: sorted(t for t in ts if t.startswith("bench.data")) for m, ts in graph.items()
                 if m.startswith("baselines")}  # fmt: skip
    assert not any(offenders.values()), offenders
