"""What a user outside this repository gets: the wheel, installed into a fresh virtual environment in a folder
far from the clone, runs `--help` and the demo, and carries its licence, metadata, types and data.

Offline: the wheel is built without build isolation (this environment's setuptools), and the fresh
environment finds the dependencies (numpy, pyarrow, ...) through a .pth file pointing at this environment's
site-packages, so nothing is downloaded; mlops-gates itself comes only from the wheel (checked)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from email.parser import Parser
from pathlib import Path


def test_the_wheel_carries_licence_metadata_types_schemas_and_demo_data(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(z.read(meta_name).decode())
    for needed in (
        "mlops_gates/py.typed",
        "mlops_gates/schemas/policy.v1.schema.json",
        "mlops_gates/schemas/decision.v1.schema.json",
        "mlops_gates/demo/adult-train.parquet",
        "mlops_gates/demo/adult-test.parquet",
        "mlops_gates/demo/gates.yml",
        "mlops_gates/gates/deepchecks/runner.py",
    ):
        assert needed in names, needed
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert meta["License-Expression"] == "Apache-2.0"
    assert "Typing :: Typed" in meta.get_all("Classifier")
    assert any(u.startswith("Changelog, ") for u in meta.get_all("Project-URL"))
    assert not [n for n in names if n.startswith("tests/") or "__pycache__" in n]


def test_installed_from_the_wheel_it_runs_help_and_the_demo_anywhere(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "dependencies-from-the-test-environment.pth").write_text(sysconfig.get_path("purelib") + "\n")
    away = tmp_path / "elsewhere"
    away.mkdir()
    where = subprocess.run(
        [str(python), "-c", "import mlops_gates; print(mlops_gates.__file__)"],
        cwd=away,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert where.startswith(str(venv)), where  # the wheel's copy, not the clone's
    cli = venv / "bin" / "mlops-gates"
    helped = subprocess.run([str(cli), "--help"], cwd=away, capture_output=True, text=True)
    assert helped.returncode == 0 and "Exit codes" in helped.stdout, helped.stderr
    demo = subprocess.run([str(cli), "demo", "--out", "out"], cwd=away, capture_output=True, text=True)
    assert demo.returncode in (0, 1), demo.stderr  # a verdict (PROMOTE, or HOLD/REJECT), not an error
    for name in ("decision.json", "report.md", "junit.xml", "report.html", "gates.yml"):
        assert (away / "out" / name).is_file(), name
    assert "training a baseline" in demo.stdout
