"""Post a decision record where reviewers look: pick the platform's driver and hand it the record and report."""

from __future__ import annotations

import os
from pathlib import Path

from mlops_gates.platforms import ci
from mlops_gates.platforms.base import Driver, Published
from mlops_gates.schemas import read_record


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
    from mlops_gates.report.public import public, publish_mode

    rec = read_record(record_path)
    report_path = record_path.parent / "report.md"
    if report_path.is_file() and publish_mode(rec) == "all":
        report = report_path.read_text()
    else:  # under residency, only what may leave the runner: rendered again from the public view
        from mlops_gates.report import markdown

        rec = public(rec)
        report = markdown.render(rec)
    d = drv or ci.driver(platform, env, token_env=token_env, check_run=check_run)
    return d.publish(rec, report, record_path.parent)
