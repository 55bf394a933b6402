"""Gate results -> PROMOTE, HOLD or REJECT with reasons, and the decision record around it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from mlops_gates._version import __version__
from mlops_gates.gates.base import GateResult, Status
from mlops_gates.platforms import ci
from mlops_gates.policy import Policy

PROMOTE, HOLD, REJECT = "PROMOTE", "HOLD", "REJECT"
SCHEMA_ID = "https://mlops-gates.dev/schemas/decision.v1.schema.json"


@dataclass(frozen=True)
class Decision:
    verdict: str
    reasons: tuple[str, ...]


def decide(results: list[GateResult], policy: Policy) -> Decision:
    """Any FAIL rejects; ERROR and INCONCLUSIVE do what the policy's `on:` says; only then PROMOTE (a WAIVED
    check, failed but excepted by a valid waiver, is named among the reasons, as a WARN is)."""
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
    warns = [
        f"{r.name}: {r.status.value}: {r.reason}" for r in results if r.status in (Status.WARN, Status.WAIVED)
    ]
    return Decision(PROMOTE, tuple(warns) or ("every gate passed",))


def record(
    policy: Policy,
    decision: Decision,
    results: list[GateResult],
    inputs: dict[str, Any],
    rows: int,
    now: dt.datetime | None = None,
    waivers: dict[str, Any] | None = None,
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
        **({"waivers": waivers} if waivers is not None else {}),
        **(
            {"residency": {"publish": r.publish, "min_group_size": r.min_group_size}}
            if (r := policy.residency) is not None
            else {}
        ),
        "created_at": (now or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="seconds"),
        "ci": ci.context(),
    }
