"""The pre-commit hook as a user adds it: `pre-commit try-repo` on the released repository builds the hook's
own environment from the package index (the built wheel's dependencies; no network), then passes a valid
policy and fails a broken one, naming the file."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import binary_policy, write_policy
from tests.packaging.release import git, package_index, release_repository


def test_pre_commit_try_repo_checks_policies(tmp_path, wheel):
    release = release_repository(tmp_path / "release")
    repo = tmp_path / "models"
    repo.mkdir()
    write_policy(repo / "gates.yml", binary_policy())
    (repo / "ml").mkdir()
    (repo / "ml" / "gates.yaml").write_text("version: 1\ntask: binary\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    env = {**os.environ, **package_index(wheel), "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}

    def try_repo(*files: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "pre_commit",
                "try-repo",
                str(release),
                "mlops-gates-policy-check",
                "--files",
                *files,
            ],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    ok = try_repo("gates.yml")
    assert ok.returncode == 0 and "Passed" in ok.stdout, ok.stdout[-3000:] + ok.stderr[-3000:]
    bad = try_repo("gates.yml", "ml/gates.yaml")
    assert bad.returncode == 1 and "Failed" in bad.stdout and "ml/gates.yaml" in bad.stdout, bad.stdout[
        -3000:
    ]
