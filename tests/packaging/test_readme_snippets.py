"""A user who follows only the README's GitHub and GitLab snippets, against a locally built release, gets a
working gate. The release is this tree as its tags leave it (tests/packaging/release.py): the action is taken
at `mlops-gates/mlops-gates@v0` and the components at `@X.Y.Z` from a repository tagged so, and the package
from a package index holding only the built wheel and its dependencies. Nothing is vendored, nothing comes from
the test environment, nothing is downloaded: the runner's pip sees that index alone."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import yaml

from tests.conftest import binary_frame, binary_policy, write_parquet, write_policy
from tests.fakes.api import FakeGitHub, FakeGitLab
from tests.packaging.release import ROOT, VERSION, git, package_index, release_repository


def readme_snippet(after: str) -> str:
    """The first ```yaml block after the README line that starts with `after`."""
    text = (ROOT / "README.md").read_text()
    start = text.index("\n" + after)
    return re.search(r"```yaml\n(.*?)```", text[start:], re.S)[1]


def readme_snippet_text() -> str:
    """The README's GitLab instructions: the paragraph after "GitLab CI"."""
    text = (ROOT / "README.md").read_text()
    return text[text.index("\nGitLab CI") :].split("\n\n", 1)[0]


def user_repository(path: Path, remote: str) -> Path:
    path.mkdir()
    write_parquet(path / "eval.parquet", binary_frame())
    write_policy(path / "gates.yml", binary_policy())
    git(path, "init", "-q")
    git(path, "remote", "add", "origin", remote)
    return path


def test_the_readme_github_snippet_gates_a_pull_request(tmp_path, wheel):
    from tests.plugins.test_act import act

    snippet = yaml.safe_load(readme_snippet("GitHub Actions"))
    uses = [s["uses"] for s in snippet["steps"]]
    assert "mlops-gates/mlops-gates@v0" in uses
    release = release_repository(tmp_path / "release")
    repo = user_repository(tmp_path / "models", "https://github.com/acme/models.git")
    workflow = {
        "name": "gate",
        "on": "pull_request",
        "jobs": {"gate": {"runs-on": "ubuntu-latest", **snippet}},
    }
    (repo / ".github" / "workflows").mkdir(parents=True)
    (repo / ".github" / "workflows" / "gate.yml").write_text(yaml.safe_dump(workflow, sort_keys=False))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "gate")
    head = git(repo, "rev-parse", "HEAD")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 7, "head": {"sha": head}}}))
    home = tmp_path / "home"  # a fresh runner (act keeps its temp folder under HOME): nothing installed yet
    home.mkdir()
    pip = package_index(wheel)
    with FakeGitHub({"ghs_fake": "github-actions[bot]"}, {7: head}) as gh:
        res = subprocess.run(
            [
                act(),
                "pull_request",
                "-P",
                "ubuntu-latest=-self-hosted",
                "--no-cache-server",
                "--action-offline-mode",
                "--local-repository",
                f"mlops-gates/mlops-gates@v0={release}",
                "-e",
                str(event),
                "-s",
                "GITHUB_TOKEN=ghs_fake",
                "--env",
                f"GITHUB_API_URL={gh.url}",
                *[a for k, v in pip.items() for a in ("--env", f"{k}={v}")],
            ],
            cwd=repo,
            env={**os.environ, "HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=900,
        )
        log = res.stdout + res.stderr
        assert res.returncode == 0, log[-4000:]
        assert re.search(f"mlops-gates {VERSION} ready in {home}/.*/mlops-gates-{VERSION}\n", log), log[
            -4000:
        ]
        comments = gh.comments.get(7, [])
        assert len(comments) == 1 and "mlops-gates: **PROMOTE**" in comments[0]["body"]
        assert f"<sub>mlops-gates {VERSION} · " in comments[0]["body"]  # the released version judged
        assert {s["sha"] for s in gh.statuses} == {head}


def fetching_from(release: Path) -> dict[str, str]:
    """The environment in which git finds the project's repository at GitLab's address (where gitlab-ci-local
    fetches included components from) in the local release."""
    here = "https://gitlab.example.com:443/mlops-gates/mlops-gates.git"
    return {
        **os.environ,
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"url.{release}.insteadOf",
        "GIT_CONFIG_VALUE_0": here,
    }


def fetch_components_one_at_a_time(gcl: Path, repo: Path, release: Path, pipeline: dict) -> None:
    """Let gitlab-ci-local fetch the pipeline's components one include at a time. It fetches a pipeline's
    includes concurrently, each copying into the same `templates/` folder of its cache, and two copies that
    start together can fail with "File exists" (gitlab-ci-local 4.73; a clean-clone CI run hit it). GitLab
    itself has no such cache; this only keeps the test from flaking. Later runs find the files and skip the
    fetch."""
    warm = repo / ".gcl-fetch.yml"
    for include in {i["component"]: i for i in pipeline["include"]}.values():
        warm.write_text(yaml.safe_dump({"include": [include]}, sort_keys=False))
        res = subprocess.run(
            [str(gcl), "--preview", "--no-color", "--file", warm.name],
            cwd=repo,
            env=fetching_from(release),
            capture_output=True,
            text=True,
        )
        assert res.returncode == 0, res.stderr[-3000:]
    warm.unlink()


def test_the_readme_gitlab_example_gates_a_merge_request(tmp_path, wheel):
    """examples/gitlab/.gitlab-ci.yml as shipped: its components are included by version from the project's
    repository (git reaches it at GitLab's address; the repository is the local release) and install the
    package at that version from the runner's package index."""
    from tests.plugins.test_gitlab_ci_local import EXAMPLE, gitlab_ci_local

    assert "examples/gitlab/.gitlab-ci.yml" in readme_snippet_text()
    gcl = gitlab_ci_local()
    release = release_repository(tmp_path / "release")
    repo = user_repository(tmp_path / "models", "https://gitlab.example.com/acme/models.git")
    pipeline = yaml.safe_load(EXAMPLE.read_text())
    assert {i["component"].rsplit("@", 1)[1] for i in pipeline["include"]} == {VERSION}
    venv = tmp_path / "runner" / "mlops-gates"  # a fresh runner: nothing installed yet
    with FakeGitLab({"glpat-fake": 7}) as gl:
        pipeline["variables"] = {  # as the project's CI/CD variables and the runner's settings would
            "GITLAB_CI": "true",
            "GITLAB_TOKEN": "glpat-fake",
            "CI_API_V4_URL": f"{gl.url}/api/v4",
            "CI_PROJECT_ID": "42",
            "CI_MERGE_REQUEST_IID": "3",
            "CI_PIPELINE_SOURCE": "merge_request_event",
            "MLOPS_GATES_VENV": str(venv),
            **package_index(wheel),
        }
        (repo / ".gitlab-ci.yml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "pipeline")
        head = git(repo, "rev-parse", "HEAD")
        fetch_components_one_at_a_time(gcl, repo, release, pipeline)
        res = subprocess.run(
            [str(gcl), "--force-shell-executor", "--no-color"],
            cwd=repo,
            env=fetching_from(release),
            capture_output=True,
            text=True,
            timeout=900,
        )
        log = res.stdout + res.stderr
        assert res.returncode == 0, log[-4000:]
        assert "PASS  mlops-gates-evaluate" in log, log[-4000:]
        notes = gl.notes.get(3, [])
        assert len(notes) == 1 and "PROMOTE" in notes[0]["body"]
        assert f"<sub>mlops-gates {VERSION} · " in notes[0]["body"]
        assert {s["sha"] for s in gl.statuses} == {head}
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
    )
    versions = {p["name"]: p["version"] for p in json.loads(installed.stdout)}
    assert (
        versions["mlops-gates"] == VERSION and "sigstore" in versions
    )  # the release, with the signing extra


def test_a_component_included_by_version_installs_that_version(tmp_path):
    """`component.version` reaches the job as the release's version. gitlab-ci-local 4.73 expands it for a
    partial version (`@0.1`, `@~latest`) and leaves it unexpanded for a full one (`@0.1.0`, where GitLab gives
    `0.1.0`): the job then installs the index's newest release, which the test above shows works."""
    from tests.plugins.test_gitlab_ci_local import EXAMPLE, gitlab_ci_local

    gcl = gitlab_ci_local()
    release = release_repository(tmp_path / "release")
    repo = user_repository(tmp_path / "models", "https://gitlab.example.com/acme/models.git")
    partial = VERSION.rsplit(".", 1)[0]
    (repo / ".gitlab-ci.yml").write_text(EXAMPLE.read_text().replace(f"@{VERSION}", f"@{partial}"))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "pipeline")
    fetch_components_one_at_a_time(gcl, repo, release, yaml.safe_load((repo / ".gitlab-ci.yml").read_text()))
    res = subprocess.run(
        [str(gcl), "--preview", "--no-color"],
        cwd=repo,
        env=fetching_from(release),
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = {k: v for k, v in yaml.safe_load(res.stdout).items() if isinstance(v, dict) and "script" in v}
    assert {k: v["variables"]["MLOPS_GATES_VERSION"] for k, v in jobs.items()} == dict.fromkeys(jobs, VERSION)
    assert set(jobs) >= {"mlops-gates-evaluate", "mlops-gates-promote-staging"}
