"""Groups and their rates, shared by the fairness gate and the regression gate's fairness margins: which
groupings a gate looks at, each model's rates per group (computed once per run), the between-group criteria
with simultaneous intervals, and what keeps a small group from being judged."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from mlops_gates.gates.base import Context
from mlops_gates.policy import GateSpec
from mlops_gates.policy import metrics as M
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
