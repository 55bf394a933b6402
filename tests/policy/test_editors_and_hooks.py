"""Editors and hooks: example policies point the YAML language server at the policy schema, whose `$id` is
stable, and the pre-commit hook this repository offers validates policies as `policy check` does."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import binary_policy, write_policy

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "mlops_gates" / "schemas" / "policy.v1.schema.json"
COMMENT = re.compile(
    r"^# yaml-language-server: \$schema=https://raw\.githubusercontent\.com/mlops-gates/mlops-gates/v0/(\S+)$"
)


def test_example_policies_name_the_schema_by_a_path_that_exists():
    examples = [ROOT / "mlops_gates" / "demo" / "gates.yml"]
    docs = (ROOT / "docs" / "policy.md").read_text()
    firsts = [p.read_text().splitlines()[0] for p in examples] + [
        docs.split("```yaml\n", 1)[1].splitlines()[0]
    ]
    for first in firsts:
        m = COMMENT.match(first)
        assert m, first
        assert (ROOT / m.group(1)).resolve() == SCHEMA.resolve()


def test_schema_ids_are_stable_and_versioned():
    for path in (ROOT / "mlops_gates" / "schemas").glob("*.schema.json"):
        doc = json.loads(path.read_text())
        assert doc["$id"] == f"https://mlops-gates.dev/schemas/{path.name}", path.name
        assert re.search(r"\.v\d+\.schema\.json$", path.name)


def test_the_pre_commit_hook_runs_policy_check_on_policy_files(tmp_path):
    manifest = ROOT / ".pre-commit-hooks.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-manifest", str(manifest)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (hook,) = yaml.safe_load(manifest.read_text())
    assert re.search(hook["files"], "ml/gates.yml") and not re.search(hook["files"], "ml/other.yml")
    good = write_policy(tmp_path / "gates.yml", binary_policy())
    bad = tmp_path / "sub" / "gates.yaml"
    bad.parent.mkdir()
    bad.write_text("version: 1\ntask: binary\n")
    entry = [str(Path(sys.executable).parent / hook["entry"].split()[0]), *hook["entry"].split()[1:]]
    ok = subprocess.run([*entry, str(good)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    both = subprocess.run([*entry, str(good), str(bad)], capture_output=True, text=True)
    assert both.returncode == 2 and "valid" in both.stdout and str(bad) in both.stderr
