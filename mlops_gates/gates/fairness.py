"""Fairness gate: per-group rates over sensitive features (and their intersection), and the between-group
criteria built from them. Undefined rates stay undefined; small groups and missing groups are reported and
handled as the policy says, never dropped silently."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from mlops_gates import metrics as M
from mlops_gates.gates.base import (
    ACTION,
    Check,
    Context,
    GateResult,
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
    """Every group rate of one model: (1+R, groups) per rate; overall (1+R,) when grouping is None. Computed
    once per run: the group table, each criterion and its simultaneous intervals all read them."""

    def compute() -> dict[str, np.ndarray]:
        r = ctx.resampled(("y", "c", "b"))
        G = group_matrix(ctx.stats, r.table.keys["stratum"], [grouping])[0] if grouping is not None else None
        return rates(r.apply(lambda b: confusion(b, side, len(ctx.stats.classes), G)))

    return ctx.once(("group_rates", grouping, side), compute)


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


def rate_family(
    ctx: Context,
    sides: tuple[str, ...],
    grouping: tuple[int, ...],
    metric: str,
    keep: np.ndarray,
    counts: dict[str, np.ndarray],
) -> tuple[Any, Any]:
    """The metric's rates for every kept group (and model, for a comparison) as one family with simultaneous
    intervals, and the bounds the metric takes from them: (Family, Bounds)."""
    from mlops_gates.stats.simultaneous import Family, gap_bounds, widening_bounds

    base_rates, agg = M.split_fairness(metric)
    columns: list[np.ndarray] = []
    floors: list[np.ndarray] = []
    parts: dict[str, list[slice]] = {}

    lows: list[np.ndarray] = []

    def add(name: str, values: np.ndarray, floor: np.ndarray, low: float) -> None:
        start = sum(c.shape[1] for c in columns)
        columns.append(values)
        floors.append(floor)
        lows.append(np.full(values.shape[1], low))
        parts.setdefault(name, []).append(slice(start, start + values.shape[1]))

    per = {side: group_rates(ctx, grouping, side) for side in sides}
    overall = {side: group_rates(ctx, None, side) for side in sides}
    for rate in base_rates:
        n = counts[DENOMINATOR[rate]][keep]
        for side in sides:
            values = per[side][rate][:, keep]
            if agg == "overall_difference":
                values = values - overall[side][rate][:, None]
            p = (per[side][rate][0, keep] * n + 2) / (n + 4)  # Agresti-Coull: a rate of 0 or 1 still varies
            add(
                side,
                values,
                np.sqrt(p * (1 - p) / np.maximum(n, 1)),
                -1.0 if agg == "overall_difference" else 0.0,
            )
        if len(sides) == 2:  # the paired differences, group by group
            add("d", per["c"][rate][:, keep] - per["b"][rate][:, keep], np.full(int(keep.sum()), 1e-9), -1.0)
    family = Family.of(np.concatenate(columns, axis=1), np.concatenate(floors), np.concatenate(lows), 1.0)
    kind = "overall" if agg == "overall_difference" else agg
    if len(sides) == 1:
        return family, gap_bounds(parts[sides[0]], kind)
    return family, widening_bounds(parts["c"], parts["b"], parts["d"], kind)


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


def shortfall(ctx: Context, rates_used: tuple[str, ...], counts: dict[str, np.ndarray], j: int) -> list[str]:
    """Why group j is too small to judge these rates (empty when it is not)."""
    s = ctx.policy.settings
    short = []
    if counts["rows"][j] < s.min_group_size:
        short.append(f"{int(counts['rows'][j])} rows < min_group_size {s.min_group_size}")
    for rate in rates_used:
        den = DENOMINATOR[rate]
        k = int(counts[den][j])
        if den != "rows" and k < max(s.min_group_positives, 1):
            why = "undefined" if k == 0 else "too uncertain"
            short.append(f"{k} {den} (the {rate} is {why}; min_group_positives {s.min_group_positives})")
    return short


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
