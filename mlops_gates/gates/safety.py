"""Safety gate: every file of every model is identified, and pickles are walked opcode by opcode; an import
outside the allow-list fails with the offending global named. Nothing is loaded to judge it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlops_gates.gates.base import Context, GateResult, Status
from mlops_gates.gates.judge import Check, judge, summarise
from mlops_gates.models.scan import scan
from mlops_gates.policy import GateSpec


def targets(spec: GateSpec, ctx: Context) -> list[tuple[str, Path]]:
    """The pinned copies of the policy's models (what was loaded), then any extra paths."""
    out = [(role, p.path) for role, p in ctx.pinned.items()]
    base = ctx.policy.path.parent
    for raw in spec.config.get("paths", []):
        p = Path(raw)
        out.append((raw, p if p.is_absolute() else base / p))
    return out


def evaluate(spec: GateSpec, ctx: Context) -> GateResult:
    checks: list[Check] = []
    unknown = Status.WARN if spec.config.get("allow_unknown") else Status.FAIL
    details: dict = {"files": []}
    for label, path in targets(spec, ctx):
        if not path.exists():
            checks.append(
                Check(
                    "artifact_safe",
                    label,
                    np.array([np.nan]),
                    0,
                    None,
                    None,
                    spec.severity,
                    note=f"{path} not found",
                    forced=Status.ERROR,
                )
            )
            continue
        for r in scan(path):
            details["files"].append(
                {
                    "model": label,
                    "file": r.path,
                    "kind": r.kind,
                    "safe": r.safe,
                    "unsafe": r.unsafe,
                    "globals": r.globals,
                }
            )
            if r.safe:
                status, note = Status.PASS, r.kind
            elif r.safe is None:
                status, note = unknown, f"{r.kind}: {r.note}"
            else:
                status, note = (
                    Status.FAIL,
                    f"{r.kind}: " + (f"imports {', '.join(r.unsafe)}" if r.unsafe else str(r.note)),
                )
            checks.append(
                Check(
                    "artifact_safe",
                    f"{label}: {r.path}",
                    np.array([1.0 if r.safe else 0.0]),
                    1,
                    None,
                    None,
                    spec.severity,
                    note=note,
                    forced=status,
                )
            )
    return summarise(spec.name, spec.type, judge(checks, ctx.policy), ctx.policy, details)
