"""Fairness gate: per-group rates over sensitive features (and their intersection), and the between-group
criteria built from them. Undefined rates stay undefined; small groups and missing groups are reported and
handled as the policy says, never dropped silently."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlops_gates.gates.base import ACTION, Context, GateResult, insufficient_status
from mlops_gates.gates.common import scope_label
from mlops_gates.gates.groups import (
    fairness_values,
    group_counts,
    group_rates,
    grouping_name,
    groupings_for,
    rate_family,
    shortfall,
)
from mlops_gates.gates.judge import Check, judge, summarise
from mlops_gates.policy import GateSpec
from mlops_gates.policy import metrics as M
from mlops_gates.stats.inference import interval


def expected_groups(spec: GateSpec, ctx: Context) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {k: list(v) for k, v in (spec.config.get("expected_groups") or {}).items()}
    ref = ctx.policy.reference
    if ref is not None:
        from mlops_gates.data.reader import column_names, read_table

        present = [c for c in ctx.policy.columns.sensitive if c in column_names(ref)]
        if present:
            table = read_table(ref, present)
            for c in present:
                out.setdefault(c, [])
                out[c] += [
                    v for v in table.column(c).unique().to_pylist() if v is not None and v not in out[c]
                ]
    return out


def _group_table(
    ctx: Context, grouping: tuple[int, ...], labels: list, counts: dict[str, np.ndarray]
) -> list[dict[str, Any]]:
    """Every rate of every group, for both models, with intervals: the report's per-group table."""
    stats, conf = ctx.stats, ctx.policy.settings.confidence
    per_model = {
        side: group_rates(ctx, grouping, side) for side in (["c", "b"] if stats.has_baseline else ["c"])
    }
    rows = []
    for j, (g, v) in enumerate(labels):
        row: dict[str, Any] = {
            "grouping": grouping_name(ctx, grouping),
            "group": scope_label(stats.group_columns, g, v),
            "n": int(counts["rows"][j]),
            "positives": int(counts["positives"][j]),
        }
        for side, vals in per_model.items():
            row["candidate" if side == "c" else "baseline"] = {
                rate: {"value": float(v[0, j]), "ci": interval(v[:, j], conf)} for rate, v in vals.items()
            }
        rows.append(row)
    return rows


def _missing_groups(spec: GateSpec, ctx: Context) -> list[Check]:
    stats, status = ctx.stats, ACTION[ctx.policy.on.missing_group]
    out = []
    for feature, groups in expected_groups(spec, ctx).items():
        if feature not in stats.group_columns:
            continue
        i = stats.group_columns.index(feature)
        seen = {str(st[i]) for st in stats.strata}
        for v in groups:
            if str(v) not in seen:
                note = "expected group is missing from the evaluation data"
                out.append(
                    Check(
                        "group_present",
                        f"{feature}={v}",
                        np.array([np.nan]),
                        0,
                        None,
                        None,
                        spec.severity,
                        note=note,
                        forced=status,
                    )
                )
    return out


def evaluate(spec: GateSpec, ctx: Context) -> GateResult:
    stats = ctx.stats
    small = insufficient_status(ctx.policy)
    checks: list[Check] = []
    details: dict[str, Any] = {"groups": []}
    for grouping in groupings_for(spec, ctx):
        gname = grouping_name(ctx, grouping)
        labels, counts = group_counts(ctx, grouping)
        details["groups"] += _group_table(ctx, grouping, labels, counts)
        for t in spec.thresholds:
            rates_used, _ = M.split_fairness(t.metric)
            keep = np.ones(len(labels), dtype=bool)
            for j, (g, v) in enumerate(labels):
                short = shortfall(ctx, rates_used, counts, j)
                if short:
                    keep[j] = False
                    note = "insufficient evidence: " + "; ".join(short)
                    scope = scope_label(stats.group_columns, g, v)
                    checks.append(
                        Check(
                            t.metric,
                            scope,
                            np.array([np.nan]),
                            int(counts["rows"][j]),
                            None,
                            None,
                            t.severity,
                            note=note,
                            forced=small,
                        )
                    )
            n = int(counts["rows"][keep].sum())
            if keep.sum() < 2:
                note = f"fewer than two groups with enough evidence in {gname}"
                checks.append(
                    Check(
                        t.metric,
                        gname,
                        np.array([np.nan]),
                        n,
                        t.op,
                        t.value,
                        t.severity,
                        note=note,
                        forced=small,
                    )
                )
                continue
            values = fairness_values(ctx, "c", grouping, t.metric, keep)
            baseline = (
                float(fairness_values(ctx, "b", grouping, t.metric, keep)[0]) if stats.has_baseline else None
            )
            check = Check(t.metric, gname, values[:1], n, t.op, t.value, t.severity, baseline=baseline)
            check.simultaneous = rate_family(ctx, ("c",), grouping, t.metric, keep, counts)
            check.note = "simultaneous intervals of the group rates (max-t)"
            checks.append(check)
    checks += _missing_groups(spec, ctx)
    return summarise(spec.name, spec.type, judge(checks, ctx.policy), ctx.policy, details)
