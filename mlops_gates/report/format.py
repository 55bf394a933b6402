"""Small shared formatting for every report."""

from __future__ import annotations

from typing import Any

ICON = {
    "PASS": "✅",
    "WARN": "⚠️",
    "INCONCLUSIVE": "❔",
    "FAIL": "❌",
    "ERROR": "💥",
    "SKIP": "⏭️",
    "WAIVED": "🔖",
    "PROMOTE": "✅",
    "HOLD": "⏸️",
    "REJECT": "❌",
}


def num(v: Any) -> str:
    if v is None:
        return "undefined"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return f"{v:.4g}"


def ci(m: dict[str, Any]) -> str:
    c = m.get("ci")
    if not c:
        return "–"
    return "exact" if c[0] == c[1] == m.get("value") else f"[{num(c[0])}, {num(c[1])}]"


def threshold(m: dict[str, Any]) -> str:
    return (
        f"{m['comparator']} {num(m['threshold'])}"
        if m.get("comparator") and m.get("threshold") is not None
        else "–"
    )


def to_decide(m: dict[str, Any]) -> str:
    """What would settle an INCONCLUSIVE check, in words (empty for any other)."""
    d = m.get("to_decide")
    if not d:
        return ""
    if d.get("rows_needed") is None:
        return f"these rows detect {num(d['mde'])} from the threshold; the estimate sits on it, so no sample size decides"
    return (
        f"these rows detect {num(d['mde'])} from the threshold; about {num(d['rows_needed'])} rows "
        f"({d['factor']:.1f}x, in every group where groups decide) would decide if the estimate held"
    )


def waivers(rec: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The record's waivers as plain lines (each renderer escapes them): those applied, those ignored and why."""
    w = rec.get("waivers") or {"applied": [], "ignored": []}
    applied = [
        f"{'/'.join(x for x in (a['check']['gate'], a['check']['metric'], a['check']['scope']) if x)}: waived by "
        f"{a['approver']} ({a['role']}) until {a['expires']}: {a['reason']} ({a['file']})"
        for a in w["applied"]
    ]
    return applied, [f"{i['file']}: ignored: {i['why']}" for i in w["ignored"]]
