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
