"""A locally built release, for the tests that act as a user outside this repository: the wheel (built offline
from this tree), a package index holding it and its dependencies (nothing is downloaded: pip sees only these
folders), and the project's repository at the release's tags (v0 and vX.Y.Z for the GitHub actions, X.Y.Z for
the GitLab components)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.plugins.test_act import git

ROOT = Path(__file__).resolve().parents[2]
VERSION = re.search(r'__version__ = "(.+)"', (ROOT / "mlops_gates" / "_version.py").read_text())[1]
WHEELHOUSE = ROOT / ".cache" / "wheelhouse"
# what a release of this repository holds that its users run: the actions, the components and the package
RELEASED = [
    ".pre-commit-hooks.yaml",
    "action.yml",
    "actions",
    "templates",
    "pyproject.toml",
    "README.md",
    "LICENSE",
    "mlops_gates",
    "schemas",
]


def copy_sources(dest: Path, names: list[str]) -> None:
    for name in names:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dest / name)


def build_wheel(work: Path) -> Path:
    """The wheel, built from a copy of the sources without build isolation (this environment's setuptools)."""
    src, dist = work / "src", work / "dist"
    src.mkdir()
    copy_sources(src, ["pyproject.toml", "README.md", "LICENSE", "mlops_gates"])
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-build-isolation",
            "--no-deps",
            "-q",
            "-w",
            str(dist),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    (found,) = dist.glob("mlops_gates-*.whl")
    return found


def package_index(wheel: Path | None) -> dict[str, str]:
    """pip's settings for a runner whose package index holds this release (when given) and its dependencies
    only."""
    if not (WHEELHOUSE / ".downloaded").exists():
        if os.environ.get("CI") == "true":
            pytest.fail("the wheelhouse is missing: make test downloads it (.cache/wheelhouse)")
        pytest.skip("the wheelhouse is missing (make test downloads it to .cache/wheelhouse)")
    folders = [str(wheel.parent)] if wheel else []
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": " ".join([*folders, str(WHEELHOUSE)])}


def release_repository(dest: Path) -> Path:
    """This project's repository as a release leaves it: one commit tagged v0, vX.Y.Z and X.Y.Z."""
    dest.mkdir(parents=True)
    copy_sources(dest, RELEASED)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", f"release {VERSION}")
    for tag in ("v0", f"v{VERSION}", VERSION):
        git(dest, "tag", tag)
    return dest
