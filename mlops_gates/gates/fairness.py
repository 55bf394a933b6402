"""Fairness gate: per-group rates over sensitive features (and their intersection), and the between-group
criteria built from them. Undefined rates stay undefined; small groups and missing groups are reported and
handled as the policy says, never dropped silently."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from mlops_gates import metrics as M
from mlops_gates.gates.base import (
    Check,
    Context,
    GateResult,
    Status,
    insufficient_status,
    interval,
    judge,
    summarise,
)
from mlops_gates.gates.common import scope_label
from mlops_gates.policy import GateSpec
from mlops_gates.stats.compute import confusion, group_matrix, rates

# Which confusion cells a rate is conditioned on: its denominator must hold enough rows.
DENOMINATOR = {
    "selection_rate": "rows",
    "accuracy": "rows",
    "tpr": "positives",
    "fpr": "negatives",
    "precision": "predicted positives",
}


def groupings_for(spec: GateSpec, ctx: Context) -> list[tuple[int, ...]]:
    cols = ctx.stats.group_columns
    features = spec.config.get("features") or list(ctx.policy.columns.sensitive)
    idx = [cols.index(f) for f in features]
    out: list[tuple[int, ...]] = [(i,) for i in idx]
    if spec.config.get("intersections") and len(idx) > 1:
        out.append(tuple(idx))
    return out


def grouping_name(ctx: Context, g: tuple[int, ...]) -> str:
    return " x ".join(ctx.stats.group_columns[i] for i in g)


def _aggregate(per_group: np.ndarray, overall: np.ndarray, agg: str) -> np.ndarray:
    """per_group: (1+R, m) -> (1+R,) difference (max - min), ratio (min / max) or largest gap to overall."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if agg == "difference":
            return np.nanmax(per_group, axis=1) - np.nanmin(per_group, axis=1)
        if agg == "ratio":
            hi = np.nanmax(per_group, axis=1)
            return np.where(hi > 0, np.nanmin(per_group, axis=1) / np.where(hi > 0, hi, 1), np.nan)
        return np.nanmax(np.abs(per_group - overall[:, None]), axis=1)


def group_rates(ctx: Context, grouping: tuple[int, ...] | None, side: str) -> dict[str, np.ndarray]:
    """Every group rate of one model: (1+R, groups) per rate; overall (1+R,) when grouping is None."""
    r = ctx.resampled(("y", "c", "b"))
    G = group_matrix(ctx.stats, r.table.keys["stratum"], [grouping])[0] if grouping is not None else None
    return rates(r.apply(lambda b: confusion(b, side, 2, G)))


def fairness_values(
    ctx: Context, side: str, grouping: tuple[int, ...], metric: str, keep: np.ndarray
) -> np.ndarray:
    """One fairness metric for one grouping and one model, over the groups in `keep`: (1+R,)."""
    per = group_rates(ctx, grouping, side)
    overall = group_rates(ctx, None, side)
    base_rates, agg = M.split_fairness(metric)
    parts = [_aggregate(per[rate][:, keep], overall[rate], agg) for rate in base_rates]
    if len(parts) == 1:
        return parts[0]
    return np.maximum(*parts) if agg != "ratio" else np.minimum(*parts)


def group_counts(ctx: Context, grouping: tuple[int, ...]) -> tuple[list, dict[str, np.ndarray]]:
    """Unweighted rows behind each rate's denominator, per group."""
    r = ctx.resampled(("y", "c", "b"))
    t = r.table
    G, labels = group_matrix(ctx.stats, t.keys["stratum"], [grouping])
    y, c = t.keys["y"], t.keys["c"]
    n = t.n.astype(np.float64)
    return labels, {
        "rows": n @ G,
        "positives": (n * (y == 1)) @ G,
        "negatives": (n * (y == 0)) @ G,
        "predicted positives": (n * (c == 1)) @ G,
    }


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


def evaluate(spec: GateSpec, ctx: Context) -> GateResult:
    policy, stats = ctx.policy, ctx.stats
    s = policy.settings
    tests: list[Check] = []
    details: dict[str, Any] = {"groups": []}
    small_status = insufficient_status(policy)
    for grouping in groupings_for(spec, ctx):
        gname = grouping_name(ctx, grouping)
        labels, counts = group_counts(ctx, grouping)
        # the per-group table, for the report
        per_model = {
            side: group_rates(ctx, grouping, side) for side in (["c", "b"] if stats.has_baseline else ["c"])
        }
        for j, (g, v) in enumerate(labels):
            row: dict[str, Any] = {
                "grouping": gname,
                "group": scope_label(stats.group_columns, g, v),
                "n": int(counts["rows"][j]),
                "positives": int(counts["positives"][j]),
            }
            for side, vals in per_model.items():
                row["candidate" if side == "c" else "baseline"] = {
                    rate: {"value": float(vals[rate][0, j]), "ci": interval(vals[rate][:, j], s.confidence)}
                    for rate in M.GROUP_RATES
                }
            details["groups"].append(row)
        for t in spec.thresholds:
            base_rates, _ = M.split_fairness(t.metric)
            keep = np.ones(len(labels), dtype=bool)
            for j, (g, v) in enumerate(labels):
                short = []
                if counts["rows"][j] < s.min_group_size:
                    short.append(f"{int(counts['rows'][j])} rows < min_group_size {s.min_group_size}")
                for rate in base_rates:
                    den = DENOMINATOR[rate]
                    if den != "rows" and counts[den][j] < max(s.min_group_positives, 1):
                        short.append(
                            f"{int(counts[den][j])} {den} (the {rate} is {'undefined' if counts[den][j] == 0 else 'too uncertain'}; "
                            f"min_group_positives {s.min_group_positives})"
                        )
                if short:
                    keep[j] = False
                    tests.append(
                        Check(
                            t.metric,
                            scope_label(stats.group_columns, g, v),
                            np.array([np.nan]),
                            int(counts["rows"][j]),
                            None,
                            None,
                            t.severity,
                            note="insufficient evidence: " + "; ".join(short),
                            forced=small_status,
                        )
                    )
            if keep.sum() < 2:
                tests.append(
                    Check(
                        t.metric,
                        gname,
                        np.array([np.nan]),
                        int(counts["rows"].sum()),
                        t.op,
                        t.value,
                        t.severity,
                        note=f"fewer than two groups with enough evidence in {gname}",
                        forced=small_status,
                    )
                )
                continue
            values = fairness_values(ctx, "c", grouping, t.metric, keep)
            baseline = (
                float(fairness_values(ctx, "b", grouping, t.metric, keep)[0]) if stats.has_baseline else None
            )
            tests.append(
                Check(
                    t.metric,
                    gname,
                    values,
                    int(counts["rows"][keep].sum()),
                    t.op,
                    t.value,
                    t.severity,
                    baseline=baseline,
                )
            )
    for feature, groups in expected_groups(spec, ctx).items():
        if feature not in stats.group_columns:
            continue
        i = stats.group_columns.index(feature)
        seen = {st[i] for st in stats.strata}
        for v in groups:
            if v not in seen and str(v) not in {str(x) for x in seen}:
                status = {"hold": Status.INCONCLUSIVE, "fail": Status.FAIL, "warn": Status.WARN}[
                    policy.on.missing_group
                ]
                tests.append(
                    Check(
                        "group_present",
                        f"{feature}={v}",
                        np.array([np.nan]),
                        0,
                        None,
                        None,
                        spec.severity,
                        note="expected group is missing from the evaluation data",
                        forced=status,
                    )
                )
    return summarise(spec.name, spec.type, judge(tests, policy), policy, details)
