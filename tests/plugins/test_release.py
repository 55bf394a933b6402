"""The release workflow (.github/workflows/release.yml), beyond the schema, actionlint and zizmor
(test_ci_plugins.py): the order of its jobs, pinned actions, least privilege, and its version check run for
real. Its build and install steps need the package index, so the suite does not run them under act;
tests/packaging/test_wheel.py builds and installs the same wheel offline."""

from __future__ import annotations

import re
import subprocess
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
