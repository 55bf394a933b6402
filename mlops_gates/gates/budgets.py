"""Budgets gate: what the model costs to ship and run, measured by its predict step: size on disk, peak
memory while loading and predicting (its own process), and latency per batch (p50, p95). Absolute limits,
and margins relative to the baseline model measured the same way."""

from __future__ import annotations

import numpy as np

from mlops_gates.gates.base import Context, GateResult, Status
from mlops_gates.gates.judge import Check, judge, summarise
from mlops_gates.policy import GateSpec

MB = 1024 * 1024


def measured(run: dict, metric: str) -> float:
    return {
        "size_mb": run["size_bytes"] / MB,
        "peak_memory_mb": run["peak_memory_bytes"] / MB,
        "latency_p50_ms": run["latency_p50_ms"],
        "latency_p95_ms": run["latency_p95_ms"],
    }[metric]


def evaluate(spec: GateSpec, ctx: Context) -> GateResult:
    role = spec.config.get("model", "candidate")
    run = ctx.runs.get(role)
    if run is None:
        return GateResult(
            spec.name, spec.type, Status.ERROR, f"no measurements for the {role} model: it did not predict"
        )
    checks: list[Check] = []
    for t in spec.thresholds:
        checks.append(
            Check(
                t.metric,
                role,
                np.array([measured(run, t.metric)]),
                run["rows"],
                t.op,
                t.value,
                t.severity,
                exact=True,
            )
        )
    for m in spec.margins:
        base = ctx.runs.get("baseline")
        if base is None:
            checks.append(
                Check(
                    m.metric,
                    f"{role} vs baseline",
                    np.array([np.nan]),
                    0,
                    None,
                    None,
                    m.severity,
                    note="no baseline model was measured",
                    forced=Status.ERROR,
                )
            )
            continue
        b = measured(base, m.metric)
        allowed = b + (m.value if m.kind == "absolute" else m.value * b)
        note = f"baseline {b:.4g}; allowed up to {allowed:.4g}"
        checks.append(
            Check(
                m.metric,
                f"{role} vs baseline",
                np.array([measured(run, m.metric)]),
                run["rows"],
                "<=",
                allowed,
                m.severity,
                baseline=b,
                note=note,
                exact=True,
            )
        )
    return summarise(spec.name, spec.type, judge(checks, ctx.policy), ctx.policy, {"runs": ctx.runs})
