"""Post a decision record where reviewers look: pick the platform's driver and hand it the record and report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlops_gates.errors import GateError, read_json
from mlops_gates.platforms.base import Driver, Published

PLATFORMS = ("auto", "github", "gitlab", "local")


def detect(env: dict[str, str]) -> str:
    if env.get("GITHUB_ACTIONS") == "true":
        return "github"
    if env.get("GITLAB_CI") == "true":
        return "gitlab"
    return "local"


def driver(
    platform: str, env: dict[str, str], *, token_env: str | None = None, check_run: bool = False
) -> Driver:
    name = detect(env) if platform == "auto" else platform
    if name == "github":
        from mlops_gates.platforms.github import GitHub

        return GitHub(env, token_env=token_env or "GITHUB_TOKEN", check_run=check_run)
    if name == "gitlab":
        from mlops_gates.platforms.gitlab import GitLab

        return GitLab(env, token_env=token_env or "GITLAB_TOKEN")
    from mlops_gates.platforms.local import Local

    return Local()


def load_record(path: Path) -> dict[str, Any]:
    """Read and check a decision record; a broken one is a usage error, never posted."""
    import jsonschema

    from mlops_gates.policy import schema_file

    rec = read_json(path, "a JSON decision record", "pass the decision.json that evaluate wrote")
    errors = sorted(
        jsonschema.Draft202012Validator(schema_file("decision.v1.schema.json")).iter_errors(rec), key=str
    )
    if errors:
        where = "/".join(map(str, errors[0].absolute_path)) or "(top level)"
        raise GateError(
            f"is not a valid decision record: {where}: {errors[0].message}",
            where=str(path),
            hint="publish the decision.json that evaluate wrote, unchanged",
        )
    return rec


def publish(
    record_path: Path,
    platform: str = "auto",
    *,
    env: dict[str, str] | None = None,
    token_env: str | None = None,
    check_run: bool = False,
    drv: Driver | None = None,
) -> Published:
    env = dict(os.environ if env is None else env)
    rec = load_record(record_path)
    report_path = record_path.parent / "report.md"
    if report_path.is_file():
        report = report_path.read_text()
    else:
        from mlops_gates.report import markdown

        report = markdown.render(rec)
    d = drv or driver(platform, env, token_env=token_env, check_run=check_run)
    return d.publish(rec, report, record_path.parent)
