"""The release workflow (.github/workflows/release.yml), beyond the schema, actionlint and zizmor
(test_ci_plugins.py): the order of its jobs, pinned actions, least privilege, its version check and major
tags, and its build and test jobs run by act up to the first upload."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
JOBS = WORKFLOW["jobs"]


def test_it_runs_on_version_tags_only_and_in_order():
    assert WORKFLOW[True]["push"] == {"tags": ["v[0-9]+.[0-9]+.[0-9]+"]}  # YAML 1.1 reads `on` as True
    order = ["build", "test", "image", "publish", "github-release", "major-tag"]
    assert list(JOBS) == order
    for before, job in zip(order, order[1:], strict=False):
        assert JOBS[job]["needs"] == before  # nothing is published before the built wheel passed


def test_every_action_is_pinned_by_commit_and_permissions_are_least():
    assert WORKFLOW["permissions"] == {}
    for name, job in JOBS.items():
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", step["uses"]), (name, step["uses"])
        perms = job.get("permissions", {})
        assert ("id-token" in perms) == (name in ("image", "publish", "github-release")), name
        assert (perms.get("contents") == "write") == (name in ("github-release", "major-tag")), name
        assert (perms.get("packages") == "write") == (name in ("image", "major-tag")), name
    assert JOBS["publish"]["environment"]["name"] == "pypi"


def test_the_version_check_refuses_a_tag_that_is_not_the_packages_version():
    (step,) = [s for s in JOBS["build"]["steps"] if s.get("name") == "The tag names the package's version"]
    version = re.search(r'__version__ = "(.+)"', (ROOT / "mlops_gates" / "_version.py").read_text())[1]

    def check(tag: str) -> int:
        return subprocess.run(
            ["bash", "-ec", step["run"]], cwd=ROOT, env={"TAG": tag}, capture_output=True
        ).returncode

    assert check(f"v{version}") == 0
    assert check("v9.9.9") != 0


def test_the_major_tags_are_the_tags_first_component():
    actions, image = JOBS["major-tag"]["steps"]
    script = actions["run"].split("\n", 1)[0]  # major="${TAG%%.*}"
    out = subprocess.run(
        ["bash", "-c", f'{script}; printf %s "$major"'], env={"TAG": "v0.4.2"}, capture_output=True, text=True
    )
    assert out.stdout == "v0"
    version, retag = image["run"].splitlines()[1:3]  # version="${TAG#v}"; imagetools create --tag IMAGE:0
    retag = retag.replace("docker buildx imagetools create", "printf '%s '")
    out = subprocess.run(
        ["bash", "-c", f"{version}; {retag}"],
        env={"TAG": "v0.4.2", "IMAGE": "img"},
        capture_output=True,
        text=True,
    )
    assert out.stdout.split() == ["--tag", "img:0", "img:0.4.2"]


def test_the_image_is_built_around_the_tested_wheel_and_smoke_tested_before_anything_is_published():
    job = JOBS["image"]
    names = [s.get("name", s.get("uses", "")) for s in job["steps"]]
    build = next(s["run"] for s in job["steps"] if s.get("name", "").startswith("Build the image"))
    assert "--build-context dist=dist" in build  # the Dockerfile's `dist` stage, replaced by the tested wheel
    assert (
        names.index("Build the image around the tested wheel")
        < next(i for i, n in enumerate(names) if n.startswith("Smoke test"))
        < names.index("Push the version's tag")
    )
    smoke = next(s["run"] for s in job["steps"] if s.get("name", "").startswith("Smoke test"))
    assert "id -u" in smoke and "demo" in smoke and "sigstore" in smoke


STANDINS = Path(__file__).parent / "standins"


def test_the_release_builds_and_tests_the_wheel_under_act(tmp_path):
    """The workflow's build and test jobs, run by act on a push of this version's tag: the version check, the
    build with the hash-pinned tools, the built wheel installed in a fresh environment and the demo run from it.
    The jobs after them upload (image, PyPI, release, tags) and are left out. GitHub's setup-python and
    artifact actions are replaced by local stand-ins (standins/README.md says why and what they do); pip sees
    only the local wheelhouse."""
    from tests.packaging.release import RELEASED, VERSION, copy_sources, package_index
    from tests.plugins.test_act import act, git

    index = package_index(None)  # the dependencies; the workflow builds the wheel itself
    repo = tmp_path / "mlops-gates"
    repo.mkdir()
    copy_sources(repo, RELEASED)
    (repo / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(ROOT / ".github" / "release-requirements.txt", repo / ".github")
    upto = {name: job for name, job in JOBS.items() if name in ("build", "test")}
    here = "{}.{}".format(*sys.version_info[:2])  # the wheelhouse holds wheels for this interpreter
    for step in [s for job in upto.values() for s in job["steps"]]:
        if step.get("uses", "").startswith("actions/setup-python@"):
            step["with"]["python-version"] = here
    (repo / ".github" / "workflows" / "release.yml").write_text(
        yaml.safe_dump({"name": "release", "on": WORKFLOW[True], "permissions": {}, "jobs": upto})
    )
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "release")
    tag = f"v{VERSION}"
    git(repo, "tag", tag)
    event = tmp_path / "push.json"
    event.write_text(json.dumps({"ref": f"refs/tags/{tag}", "ref_name": tag}))
    store = tmp_path / "artifacts"
    standins = []
    for step in [s for job in upto.values() for s in job["steps"]]:
        uses = step.get("uses", "")
        if uses.startswith(
            ("actions/setup-python@", "actions/upload-artifact@", "actions/download-artifact@")
        ):
            standins += ["--local-repository", f"{uses}={STANDINS / uses.split('/')[1].split('@')[0]}"]
    res = subprocess.run(
        [act(), "push", "-P", "ubuntu-latest=-self-hosted", "--no-cache-server", "--action-offline-mode"]
        + ["-e", str(event), *standins]
        + ["--env", f"STANDIN_PYTHON={sys._base_executable}", "--env", f"ARTIFACT_STORE={store}"]
        + [f"--env={k}={v}" for k, v in index.items()],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-5000:]
    assert log.count("Job succeeded") == 2, log[-3000:]  # build, then test
    built = sorted(p.name for p in (store / "dist").iterdir())
    assert built == [f"mlops_gates-{VERSION}-py3-none-any.whl", f"mlops_gates-{VERSION}.tar.gz"]
