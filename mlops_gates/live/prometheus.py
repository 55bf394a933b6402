"""System guardrails read from Prometheus at each look: one PromQL query per check, with `$canary` and
`$stable` replaced by the versions, quoted as PromQL strings (so a version name cannot change the query).
These are point values from Prometheus' own aggregation, compared with a limit, without a bound; when
Prometheus cannot answer, or the query finds no series, the check cannot judge and the rollout holds."""

from __future__ import annotations

import math
from typing import Any

from mlops_gates.errors import RemoteError
from mlops_gates.live.check import Check
from mlops_gates.live.state import LiveState


def quoted(version: str) -> str:
    """A version as the inside of a PromQL double-quoted string."""
    return version.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def query(url: str, promql: str) -> tuple[float | None, str]:
    """(value, why not): one instant query that must return one number."""
    from mlops_gates.platforms.http import Http

    try:
        answer = (
            Http(url, {}, retries=1, timeout=5.0, max_total=10.0)
            .request("GET", "/api/v1/query", params={"query": promql})
            .json()
        )
    except RemoteError as exc:
        return None, f"Prometheus did not answer: {exc.message}"
    data = (answer or {}).get("data") or {}
    result = data.get("result")
    if data.get("resultType") == "scalar":
        result = [{"value": result}]
    if not result:
        return None, "the query found no series yet"
    if len(result) > 1:
        return (
            None,
            f"the query returned {len(result)} series; aggregate it to one (sum, max, histogram_quantile)",
        )
    try:
        value = float(result[0]["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        return None, "the answer holds no number"
    return (value, "") if math.isfinite(value) else (None, f"the query's value is {value}")


def checks(settings: dict[str, Any], state: LiveState) -> list[Check]:
    canary, stable = (quoted(a.name) for a in state.arms)
    out = []
    for c in settings["checks"]:
        promql = c["query"].replace("$canary", canary).replace("$stable", stable)
        value, why = query(settings["url"], promql)
        limit = c.get("max", c.get("min"))
        if value is None:
            out.append(Check(c["name"], "guardrail", "cannot judge", why, limit=limit))
            continue
        bad = ("max" in c and value > c["max"]) or ("min" in c and value < c["min"])
        side = f"max {c['max']:g}" if "max" in c else f"min {c['min']:g}"
        out.append(
            Check(
                c["name"],
                "guardrail",
                "fail" if bad else "pass",
                f"{value:.4g} ({side}; Prometheus)",
                value,
                limit=limit,
            )
        )
    return out
