"""The shape of the package, checked: layers, no import cycle, small modules and functions, a tidy root.

The layer order is written once, here. A module may import its own layer or any layer below; an import up a
layer, or a circle of imports (function-level imports included), fails. A module no layer names fails too, so a
new module takes a deliberate place."""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "mlops_gates"

# lowest first; a pattern names modules (fnmatch on the dotted name, without the leading "mlops_gates.")
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundation",
        ("_version", "errors", "digest", "schemas", "models", "report.escape", "report.format"),
    ),
    ("renderers", ("report.markdown", "report.junit", "report.html", "report.code_quality", "report.public")),
    ("platforms", ("platforms", "platforms.*")),
    ("policy", ("policy", "policy.*")),  # policy.metrics: the metric catalogue
    ("inputs", ("data", "data.*", "models.*", "signing", "signing.*")),
    ("statistics", ("stats", "stats.*", "models.predict", "models.stage")),
    ("gates", ("gates", "gates.*")),
    ("flow", ("evaluation", "decision", "report", "demo", "demo.*")),
    ("promotion", ("promotion", "promotion.*")),
    ("live", ("live", "live.*")),  # the production half: canary analysis on live traffic
    ("front", ("", "__main__", "cli", "cli.*")),
]
ROOT_MODULES = {
    "__init__",
    "__main__",
    "_version",
    "errors",
    "digest",
    "evaluation",
    "decision",
}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def _name(path: Path) -> str:
    parts = list(path.relative_to(PKG).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _resolve(target: str) -> str | None:
    """The package module a dotted name (without the leading "mlops_gates.") falls in."""
    while target not in MODULES:
        if "." not in target:
            return None
        target = target.rpartition(".")[0]
    return target


def _imports(mod: str, path: Path) -> set[str]:
    """The package modules `mod` imports, at any depth of its code."""
    targets: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                here = ["mlops_gates", *mod.split(".")] if mod else ["mlops_gates"]
                base = here if path.name == "__init__.py" else here[:-1]
                module = ".".join(base[: len(base) - node.level + 1] + ([module] if module else []))
            # `from pkg import mod` imports the module pkg.mod; `from mod import name`, the module mod
            for a in node.names:
                sub = f"{module}.{a.name}"
                targets.append(sub if sub.removeprefix("mlops_gates.") in MODULES else module)
    found = set()
    for t in targets:
        if t == "mlops_gates" or t.startswith("mlops_gates."):
            hit = _resolve(t.removeprefix("mlops_gates").removeprefix("."))
            if hit is not None and hit != mod:
                found.add(hit)
    return found


GRAPH = {mod: _imports(mod, path) for mod, path in MODULES.items()}


def layer_of(mod: str) -> int | None:
    """The layer that names the module exactly, else the one whose wildcard matches it."""
    exact = [i for i, (_, pats) in enumerate(LAYERS) if mod in pats]
    wild = [i for i, (_, pats) in enumerate(LAYERS) for p in pats if "*" in p and fnmatch.fnmatchcase(mod, p)]
    return (exact or wild or [None])[0]


def test_every_module_has_a_layer():
    missing = sorted(m or "mlops_gates" for m in MODULES if layer_of(m) is None)
    assert not missing, f"give these modules a layer in LAYERS: {missing}"


def test_no_import_points_up_a_layer():
    up = sorted(
        f"{mod or 'mlops_gates'} ({LAYERS[layer_of(mod)][0]}) imports {dep} ({LAYERS[layer_of(dep)][0]})"
        for mod, deps in GRAPH.items()
        for dep in deps
        if layer_of(mod) is not None and layer_of(dep) is not None and layer_of(dep) > layer_of(mod)
    )
    assert not up, "imports up a layer:\n" + "\n".join(up)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_no_import_cycle():
    assert not _cycles(GRAPH)


def test_cycle_finder_finds_a_planted_cycle():
    """Negative control: the checker itself sees a circle and an import up a layer."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer_of("cli") > layer_of("stats.compute") > layer_of("errors")


@pytest.mark.parametrize("mod", sorted(MODULES))
def test_modules_and_functions_stay_small(mod):
    path = MODULES[mod]
    text = path.read_text()
    assert text.count("\n") <= MAX_MODULE_LINES, f"{path.name}: split it (over {MAX_MODULE_LINES} lines)"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{path}: functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_package_root_holds_only_the_front_door():
    root = {p.stem for p in PKG.glob("*.py")}
    assert root <= ROOT_MODULES, f"move these into a family: {sorted(root - ROOT_MODULES)}"


def test_every_exit_code_is_documented_where_users_look():
    """errors.ExitCode is API: each code is in the README's table and in `mlops-gates --help`."""
    from click.testing import CliRunner

    from mlops_gates.cli import cli
    from mlops_gates.errors import ExitCode

    readme = (PKG.parent / "README.md").read_text()
    table = readme[readme.index("### Exit codes") :].split("\n\n")[1]
    documented = {
        int(line.split("|")[1])
        for line in table.splitlines()
        if line.startswith("| ") and "|" in line[2:] and line.split("|")[1].strip().isdigit()
    }
    codes = {int(c) for c in ExitCode}
    assert documented == codes
    help_text = " ".join(CliRunner().invoke(cli, ["--help"]).output.split())
    for code in codes:
        assert f"{code} " in help_text.split("Exit codes:")[1], code


@pytest.mark.parametrize("script", ["speed", "decision_quality", "rollout", "live_speed"])
def test_benchmarks_still_import(script, monkeypatch):
    """The benchmarks are not run by the suite (tens of minutes); a moved name must not break them unseen."""
    import importlib

    monkeypatch.syspath_prepend(str(PKG.parent / "bench"))
    importlib.import_module(script)
