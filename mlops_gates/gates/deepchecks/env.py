"""deepchecks in its own virtual environment: it needs numpy < 2, pandas < 3, scikit-learn < 1.8 and
setuptools < 81 (it imports pkg_resources), which cannot share an environment with this package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from mlops_gates.errors import GateError

PINS = {
    "deepchecks": "0.19.1",
    "numpy": "1.26.4",
    "pandas": "2.3.3",
    "scikit-learn": "1.7.2",
    "pyarrow": "20.0.0",
}
EXTRA = ["setuptools<81"]
MARKER = "mlops-gates-deepchecks.json"
SETUP_HINT = "create it with: mlops-gates deepchecks setup (or set MLOPS_GATES_DEEPCHECKS_ENV to where it is)"


def default_path() -> Path:
    env = os.environ.get("MLOPS_GATES_DEEPCHECKS_ENV")
    if env:
        return Path(env)
    return (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        / "mlops-gates"
        / f"deepchecks-{PINS['deepchecks']}"
    )


def python(path: Path) -> Path:
    return path / "bin" / "python"


def _probe(path: Path) -> dict[str, str]:
    code = (
        "import json, importlib.metadata as m; import deepchecks.tabular; "
        f"print(json.dumps({{n: m.version(n) for n in {list(PINS)!r}}}))"
    )
    proc = subprocess.run([str(python(path)), "-c", code], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise GateError(
            f"deepchecks does not import in {path}: {tail}",
            hint="recreate it: mlops-gates deepchecks setup --force",
        )
    versions: dict[str, str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return versions


def check(path: Path) -> dict[str, str]:
    """The environment's versions; an error that says what to do when it is missing or not the pinned one."""
    if not python(path).exists():
        raise GateError(f"no deepchecks environment at {path}", hint=SETUP_HINT)
    marker = path / MARKER
    versions = json.loads(marker.read_text()) if marker.is_file() else {}
    wrong = {n: versions.get(n) for n, v in PINS.items() if versions.get(n) != v}
    if wrong:
        shown = ", ".join(f"{n} {v or 'missing'} (pinned {PINS[n]})" for n, v in wrong.items())
        raise GateError(
            f"the deepchecks environment at {path} is not the pinned one: {shown}",
            hint="recreate it: mlops-gates deepchecks setup --force",
        )
    return versions


def setup(path: Path, force: bool = False, echo: Callable[[str], None] = print) -> dict[str, str]:
    """Create (or reuse) the environment with the pinned versions, and prove that deepchecks imports."""
    if not force:
        try:
            versions = check(path)
            echo(f"deepchecks environment ready at {path} (reused)")
            return versions
        except GateError:
            pass
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(path)], check=True)
    pins = [f"{n}=={v}" for n, v in PINS.items()] + EXTRA
    echo(f"installing {' '.join(pins)} into {path} ...")
    proc = subprocess.run(
        [str(python(path)), "-m", "pip", "install", "-q", *pins], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise GateError(
            f"pip could not install deepchecks' pins: {proc.stderr.strip().splitlines()[-1:]}",
            where=str(path),
            hint="check the package index is reachable from this runner",
        )
    versions = _probe(path)
    (path / MARKER).write_text(json.dumps(versions, indent=2) + "\n")
    echo(f"deepchecks environment ready at {path}: " + ", ".join(f"{n} {v}" for n, v in versions.items()))
    return versions
