"""The GitLab example pipeline run for real by gitlab-ci-local (shell executor, no Docker) in a sample project
that vendors the components: on a merge request, evaluate decides and posts to a fake GitLab API on loopback;
the manual promotion job promotes a signed, registered model from the project's registry folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import binary_frame, binary_policy, write_parquet, write_policy
from tests.fakes.api import FakeGitLab
from tests.fakes.openapi import validate

ROOT = Path(__file__).resolve().parents[2]
GCL = ROOT / ".cache" / "npm" / "node_modules" / ".bin" / "gitlab-ci-local"
EXAMPLE = ROOT / "examples" / "gitlab" / ".gitlab-ci.yml"


def example_pipeline() -> str:
    """examples/gitlab/.gitlab-ci.yml as shipped, with its components taken from this project at this commit
    (as a project that vendors them would) and the registry a folder of the project."""
    text = EXAMPLE.read_text()
    text = text.replace("$CI_SERVER_FQDN/mlops-gates/mlops-gates/", "$CI_SERVER_FQDN/$CI_PROJECT_PATH/")
    text = text.replace("@0.1.0", "@$CI_COMMIT_SHA").replace("/srv/mlops-gates/registry", "registry")
    assert "mlops-gates/mlops-gates" not in text and "@0.1.0" not in text
    return text


def gitlab_ci_local() -> Path:
    missing = [what for what, ok in ((str(GCL), GCL.exists()), ("rsync", shutil.which("rsync"))) if not ok]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"missing in CI: {', '.join(missing)} (make test installs them)")
        pytest.skip(f"missing: {', '.join(missing)} (make test installs gitlab-ci-local and rsync)")
    return GCL


def test_components_run_in_a_sample_project(tmp_path):
    from mlops_gates.evaluation import run
    from mlops_gates.promotion.promote import register
    from mlops_gates.promotion.stores import open_registry
    from mlops_gates.signing.envelope import PrivateKey
    from mlops_gates.signing.sign import sign
    from tests.plugins.test_act import git
    from tests.signing.test_signing import keypair

    gcl = gitlab_ci_local()
    repo = tmp_path / "models"
    shutil.copytree(ROOT / "templates", repo / "templates")  # this project's components, at this commit
    write_parquet(repo / "eval.parquet", binary_frame())
    key, pub = keypair(repo)
    promotion = {
        "registry": "registry",
        "environments": [{"name": "staging", "signers": [{"key": pub.name}]}],
    }
    write_policy(repo / "gates.yml", binary_policy(promotion=promotion))
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(bytes(range(256)) * 4)
    outcome = run(repo / "gates.yml", tmp_path / "release", model_paths={"candidate": model})
    assert outcome.decision.verdict == "PROMOTE"
    sign(model, PrivateKey.load(key), decision=tmp_path / "release" / "decision.json")
    version, _ = register(
        open_registry(repo / "registry"),
        "churn",
        model,
        model / "model.sig",
        model / "model.decision.sig",
        actor="ci",
    )
    git(repo, "init", "-q")
    git(repo, "remote", "add", "origin", "https://gitlab.example.com/acme/models.git")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "model")
    head = git(repo, "rev-parse", "HEAD")
    with FakeGitLab({"glpat-fake": 7}) as gl:
        variables = {
            "MLOPS_GATES_VENV": str(
                Path(sys.executable).parent.parent
            ),  # installed already: no pip, no network
            "GITLAB_CI": "true",
            "GITLAB_TOKEN": "glpat-fake",
            "CI_API_V4_URL": f"{gl.url}/api/v4",
            "CI_PROJECT_ID": "42",
            "CI_MERGE_REQUEST_IID": "3",
            "CI_PIPELINE_SOURCE": "merge_request_event",
            "GITLAB_USER_LOGIN": "erin",
            "MLOPS_GATES_DIGEST": version.digest,
        }
        # as project CI/CD variables would; MLOPS_GATES_VENV: installed already, so no pip and no network
        variables["MLOPS_GATES_VENV"] = str(Path(sys.executable).parent.parent)
        pipeline = yaml.safe_load(example_pipeline())
        pipeline["variables"] = variables
        (repo / ".gitlab-ci.yml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "pipeline")
        head = git(repo, "rev-parse", "HEAD")
        res = subprocess.run(
            [
                str(gcl),
                "--force-shell-executor",
                "--no-color",
                "--manual",
                "mlops-gates-promote-staging",
            ],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=600,
        )
        log = res.stdout + res.stderr
        assert res.returncode == 0, log[-4000:]
        assert "PASS  mlops-gates-evaluate" in log and "PASS  mlops-gates-promote-staging" in log, log[-4000:]
        assert "mlops-gates-sign" not in log and "promote-production" not in log  # tags only; not asked for
        record = json.loads((repo / "gate-out" / "decision.json").read_text())
        assert (repo / "gate-out" / "junit.xml").is_file()
        assert record["decision"] == "PROMOTE" and record["ci"]["platform"] == "gitlab"
        assert record["ci"]["commit"] == head and record["ci"]["merge_request"] == 3
        notes = gl.notes.get(3, [])
        assert len(notes) == 1 and "PROMOTE" in notes[0]["body"]
        assert {s["sha"] for s in gl.statuses} == {head} and {s["state"] for s in gl.statuses} == {"success"}
        validate("gitlab", [c for c in gl.calls if "/statuses/" in c.path])
    deploy = json.loads((repo / "deploy.json").read_text())
    assert deploy["environment"] == "staging" and deploy["digest"] == version.digest
    assert f"MLOPS_GATES_DIGEST={version.digest}" in (repo / "deploy.env").read_text()  # for later jobs
