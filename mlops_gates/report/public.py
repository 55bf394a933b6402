"""What may leave the runner for the code host under the policy's `residency` (carried in the record): all of
the record; its aggregate (the verdict, each gate's status and its overall numbers, with single groups' numbers
only from a size up); or the verdict alone. Free text (reasons, notes, waivers' reasons) can quote a group, so
under residency it is rebuilt from statuses, never passed on. The full record stays in the run's artifacts."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

KEPT = "kept in the run's artifacts (residency)"


def publish_mode(rec: dict[str, Any]) -> str:
    return str((rec.get("residency") or {}).get("publish", "all"))


def public(rec: dict[str, Any]) -> dict[str, Any]:
    """The record as the code host may see it; the record itself when residency allows all."""
    mode = publish_mode(rec)
    if mode == "all":
        return rec
    out = copy.deepcopy(rec)
    out.pop("waivers", None)
    if mode == "verdict":
        out["gates"] = []
        out["reasons"] = [f"per-gate results are {KEPT}"]
        return out
    size = (rec.get("residency") or {}).get("min_group_size")
    out["gates"] = [_gate(g, size) for g in rec["gates"]]
    out["reasons"] = [f"{g['name']}: {g['status']}" for g in out["gates"] if g["status"] != "PASS"] or [
        "every gate passed"
    ]
    w = rec.get("waivers")
    if w:
        out["waivers"] = {
            "dir": w["dir"],
            "applied": [
                {**a, "check": {**a["check"], "scope": _scope(a["check"]["scope"])}, "reason": KEPT}
                for a in w["applied"]
            ],
            "ignored": [{**i, "why": KEPT} for i in w["ignored"]],
        }
    return out


def _shown(m: dict[str, Any], size: int | None) -> bool:
    """Overall numbers always; one group's (not a comparison between groups, not a crossing of groups) from
    `size` rows up."""
    if m["scope"] == "overall":
        return True
    single = "=" in m["scope"] and " x " not in m["scope"] and "between" not in m["scope"]
    return size is not None and single and m["n"] >= size


def _gate(g: dict[str, Any], size: int | None) -> dict[str, Any]:
    shown = [{**m, "note": None, "to_decide": None} for m in g["metrics"] if _shown(m, size)]
    counts = Counter(m["status"] for m in g["metrics"])
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    withheld = len(g["metrics"]) - len(shown)
    reason = f"{g['status']}" + (f" ({summary})" if summary else "")
    if withheld:
        reason += f"; {withheld} per-group or per-slice checks {KEPT}"
    return {**g, "reason": reason, "metrics": shown, "details": {}}


def _scope(scope: str | None) -> str | None:
    return scope if scope in (None, "overall") else "a group"
