"""The public library API (mlops_gates/__init__.py): each name resolves, importing it stays light, evaluating
writes nothing, and what the library decides is what the command line decides."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import mlops_gates
from tests.conftest import binary_policy, cli_main, write_policy

GATES = [
    {"type": "accuracy", "metrics": [{"metric": "accuracy", "op": ">=", "value": 0.6}]},
    {"type": "regression", "metrics": [{"metric": "accuracy", "margin": {"absolute": 0.05}}]},
]


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


def test_every_public_name_resolves_and_is_listed():
    assert set(mlops_gates.__all__) == {"__version__", *mlops_gates._API}
    for name in mlops_gates._API:
        assert getattr(mlops_gates, name) is not None, name
    with pytest.raises(AttributeError):
        _ = mlops_gates.no_such_name


def test_no_public_name_is_also_a_submodule():
    """Importing a submodule sets the package attribute of its name: a function named like a module would be
    replaced by the module as soon as anything imports it."""
    root = Path(mlops_gates.__file__).parent
    clash = [
        n for n in mlops_gates._API if (root / f"{n}.py").exists() or (root / n / "__init__.py").exists()
    ]
    assert not clash


def test_importing_the_package_loads_no_heavy_dependency():
    code = "import sys, mlops_gates; print(sorted(m for m in ('numpy', 'pyarrow', 'scipy', 'sklearn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_evaluate_writes_nothing_and_decides_as_the_command_line(binary_case, monkeypatch):
    folder, _ = binary_case
    policy = write_policy(folder / "gates.yml", binary_policy(gates=GATES))
    monkeypatch.chdir(folder)
    before = _files(folder)
    ev = mlops_gates.evaluate(policy)
    assert _files(folder) == before  # no record, no report, no temporary file left behind
    assert isinstance(ev, mlops_gates.Evaluation)
    assert ev.decision.verdict in ("PROMOTE", "HOLD", "REJECT")
    assert [r.name for r in ev.results] == ["accuracy", "regression"]
    assert all(isinstance(r.status, mlops_gates.Status) for r in ev.results)
    assert json.loads(mlops_gates.render(ev.record, "record")) == json.loads(json.dumps(ev.record))
    assert "<!-- mlops-gates:report -->" in mlops_gates.render(ev.record, "markdown")
    assert mlops_gates.render(ev.record, "junit").startswith("<?xml")

    code = cli_main(monkeypatch, "evaluate", "--policy", str(policy), "--out", str(folder / "out"))
    written = json.loads((folder / "out" / "decision.json").read_text())
    assert written["decision"] == ev.decision.verdict
    assert code == (0 if ev.decision.verdict == "PROMOTE" else 1)
    strip = lambda rec: {k: v for k, v in rec.items() if k != "created_at"}  # noqa: E731
    assert strip(written) == strip(json.loads(json.dumps(ev.record)))


def test_a_bad_policy_is_a_gate_error_through_the_api(tmp_path):
    bad = tmp_path / "gates.yml"
    bad.write_text("version: 1\ntask: binary\n")
    with pytest.raises(mlops_gates.GateError) as info:
        mlops_gates.load_policy(bad)
    assert info.value.exit_code == mlops_gates.ExitCode.USAGE
    assert str(bad) in info.value.render()
