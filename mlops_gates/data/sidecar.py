"""A tool whose dependencies cannot share this package's (deepchecks needs numpy 1, Feast pandas 2) runs in
its own pinned virtual environment, and we talk to it through files: a job in, files out. One environment per
tool, created once (`mlops-gates deepchecks setup`, `mlops-gates feast setup`) and checked against its pins
before each use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlops_gates.errors import GateError


@dataclass(frozen=True)
class Sidecar:
    name: str  # the tool, as the CLI's `NAME setup` calls it
    pins: dict[str, str]  # distribution -> exact version (the first is the tool itself)
    extra: tuple[str, ...]  # further requirements, with ranges
    env_var: str  # where a user keeps it, overriding the default
    probe: str  # a module whose import proves the tool works

    @property
    def marker(self) -> str:
        return f"mlops-gates-{self.name}.json"

    @property
    def hint(self) -> str:
        return f"create it with: mlops-gates {self.name} setup (or set {self.env_var} to where it is)"

    def default_path(self) -> Path:
        env = os.environ.get(self.env_var)
        if env:
            return Path(env)
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        return cache / "mlops-gates" / f"{self.name}-{self.pins[next(iter(self.pins))]}"

    @staticmethod
    def python(path: Path) -> Path:
        return path / "bin" / "python"

    def _probe(self, path: Path) -> dict[str, str]:
        code = (
            f"import json, importlib.metadata as m; import {self.probe}; "
            f"print(json.dumps({{n: m.version(n) for n in {list(self.pins)!r}}}))"
        )
        proc = subprocess.run(
            [str(self.python(path)), "-c", code], capture_output=True, text=True, timeout=300
        )
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise GateError(
                f"{self.name} does not import in {path}: {tail}",
                hint=f"recreate it: mlops-gates {self.name} setup --force",
            )
        versions: dict[str, str] = json.loads(proc.stdout.strip().splitlines()[-1])
        return versions

    def check(self, path: Path) -> dict[str, str]:
        """The environment's versions; an error that says what to do when it is missing or not the pinned one."""
        if not self.python(path).exists():
            raise GateError(f"no {self.name} environment at {path}", hint=self.hint)
        marker = path / self.marker
        versions = json.loads(marker.read_text()) if marker.is_file() else {}
        wrong = {n: versions.get(n) for n, v in self.pins.items() if versions.get(n) != v}
        if wrong:
            shown = ", ".join(f"{n} {v or 'missing'} (pinned {self.pins[n]})" for n, v in wrong.items())
            raise GateError(
                f"the {self.name} environment at {path} is not the pinned one: {shown}",
                hint=f"recreate it: mlops-gates {self.name} setup --force",
            )
        return versions

    def setup(self, path: Path, force: bool = False, echo: Callable[[str], None] = print) -> dict[str, str]:
        """Create (or reuse) the environment with the pinned versions, and prove that the tool imports."""
        if not force:
            try:
                versions = self.check(path)
                echo(f"{self.name} environment ready at {path} (reused)")
                return versions
            except GateError:
                pass
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(path)], check=True)
        pins = [f"{n}=={v}" for n, v in self.pins.items()] + list(self.extra)
        echo(f"installing {' '.join(pins)} into {path} ...")
        proc = subprocess.run(
            [str(self.python(path)), "-m", "pip", "install", "-q", *pins], capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise GateError(
                f"pip could not install {self.name}'s pins: {proc.stderr.strip().splitlines()[-1:]}",
                where=str(path),
                hint="check the package index is reachable from this runner",
            )
        versions = self._probe(path)
        (path / self.marker).write_text(json.dumps(versions, indent=2) + "\n")
        echo(
            f"{self.name} environment ready at {path}: " + ", ".join(f"{n} {v}" for n, v in versions.items())
        )
        return versions
