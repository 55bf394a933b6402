"""Gate results -> PROMOTE, HOLD or REJECT with reasons, and the decision record around it."""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_gates import __version__
from mlops_gates.gates.base import GateResult, Status
from mlops_gates.policy import Policy

PROMOTE, HOLD, REJECT = "PROMOTE", "HOLD", "REJECT"
SCHEMA_ID = "https://mlops-gates.dev/schemas/decision.v1.schema.json"


@dataclass(frozen=True)
class Decision:
    verdict: str
    reasons: tuple[str, ...]


def decide(results: list[GateResult], policy: Policy) -> Decision:
    """Any FAIL rejects; ERROR and INCONCLUSIVE do what the policy's `on:` says; only then PROMOTE."""
    if not results:
        return Decision(REJECT, ("no gate ran; an empty set of gates is not a pass",))
    reject: list[str] = []
    hold: list[str] = []
    for r in results:
        line = f"{r.name}: {r.status.value}: {r.reason}"
        if r.status == Status.FAIL:
            reject.append(line)
        elif r.status == Status.ERROR:
            (reject if policy.on.error == "reject" else hold).append(line)
        elif r.status == Status.INCONCLUSIVE:
            {"reject": reject, "hold": hold, "warn": []}[policy.on.inconclusive].append(line)
    if reject:
        return Decision(REJECT, tuple(reject + hold))
    if hold:
        return Decision(HOLD, tuple(hold))
    warns = [f"{r.name}: WARN: {r.reason}" for r in results if r.status == Status.WARN]
    return Decision(PROMOTE, tuple(warns) or ("every gate passed",))


def ci_context(env: dict[str, str] | None = None) -> dict[str, Any] | None:
    """Where this run happened, from the CI platform's environment (GitHub Actions or GitLab CI)."""
    e = dict(os.environ if env is None else env)
    if e.get("GITHUB_ACTIONS") == "true":
        server = e.get("GITHUB_SERVER_URL", "https://github.com")
        repo = e.get("GITHUB_REPOSITORY")
        pr = None
        event_path = e.get("GITHUB_EVENT_PATH")
        if event_path and Path(event_path).is_file():
            try:
                event = json.loads(Path(event_path).read_text())
                pr = (event.get("pull_request") or {}).get("number")
                head = ((event.get("pull_request") or {}).get("head") or {}).get("sha")
                author = ((event.get("pull_request") or {}).get("user") or {}).get("login")
            except (OSError, ValueError):
                head = author = None
        else:
            head = author = None
        return {
            "platform": "github",
            "repository": repo,
            "commit": head or e.get("GITHUB_SHA"),
            "ref": e.get("GITHUB_REF"),
            "pull_request": pr,
            "run_url": f"{server}/{repo}/actions/runs/{e['GITHUB_RUN_ID']}"
            if repo and e.get("GITHUB_RUN_ID")
            else None,
            "actor": e.get("GITHUB_ACTOR"),  # who ran it
            "author": author or e.get("GITHUB_ACTOR"),  # whose change it is: the pull request's author
        }
    if e.get("GITLAB_CI") == "true":
        mr = e.get("CI_MERGE_REQUEST_IID")
        return {
            "platform": "gitlab",
            "repository": e.get("CI_PROJECT_PATH"),
            "commit": e.get("CI_COMMIT_SHA"),
            "ref": e.get("CI_COMMIT_REF_NAME"),
            "merge_request": int(mr) if mr and mr.isdigit() else None,
            "run_url": e.get("CI_JOB_URL") or e.get("CI_PIPELINE_URL"),
            "actor": e.get("GITLAB_USER_LOGIN"),
            "author": e.get("GITLAB_USER_LOGIN"),
        }
    return None


def record(
    policy: Policy,
    decision: Decision,
    results: list[GateResult],
    inputs: dict[str, Any],
    rows: int,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    s = policy.settings
    return {
        "$schema": SCHEMA_ID,
        "record_version": 1,
        "decision": decision.verdict,
        "reasons": list(decision.reasons),
        "gates": [r.to_json() for r in results],
        "evaluation": {
            "task": policy.task,
            "rows": rows,
            "confidence": s.confidence,
            "decision_mode": s.decision_mode,
            "correction": s.correction,
            "bootstrap": {
                "replicates": s.replicates,
                "seed": s.seed,
                "stratified_by": list(policy.settings.strata),
            },
            "on": {
                k: getattr(policy.on, k)
                for k in ("error", "inconclusive", "missing_baseline", "insufficient_group", "missing_group")
            },
        },
        "inputs": inputs,
        "tool": {"name": "mlops-gates", "version": __version__},
        "created_at": (now or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="seconds"),
        "ci": ci_context(),
    }
