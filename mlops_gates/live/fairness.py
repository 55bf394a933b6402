"""Fairness on live traffic: the canary's largest gap between groups in a rate (selection rate, true-positive
rate, accuracy) against stable's, plus a margin. Every group's rate in both arms gets a confidence sequence at
alpha / (2 x groups), so all hold together at every look, and the gaps' bounds follow from them: a canary is
promoted only if its gap is surely within stable's plus the margin, rolled back only if surely beyond."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlops_gates.live.check import Check
from mlops_gates.live.state import LiveState
from mlops_gates.stats import sequential


def gap_check(rule: dict[str, Any], state: LiveState, alpha: float, horizon: int) -> Check:
    column, rate = rule["column"], rule["rate"]
    name = f"{rate} gap across {column}"
    need = rule.get("min_group_rows", 100)
    tables = [a.rates.get((column, rate), np.zeros((0, 2), dtype=np.int64)) for a in state.arms]
    groups = max(len(t) for t in tables)
    if groups < 2:
        return Check(name, "metric", "pending", f"{groups} group(s) of {column} seen so far")
    tables = [np.vstack([t, np.zeros((groups - len(t), 2), dtype=np.int64)]) for t in tables]
    fewest = np.minimum(tables[0][:, 0], tables[1][:, 0])
    if fewest.min() < need:
        names = state.group_names(column)
        small = ", ".join(names[g] for g in np.flatnonzero(fewest < need)[:5])
        return Check(name, "metric", "pending", f"groups under {need} rows in an arm: {small}")
    gaps = [_gap(t, alpha / (2 * groups), horizon) for t in tables]
    (gc, lc, uc), (gs, ls, us) = gaps
    margin = rule["margin"]
    m = margin.get("absolute", margin.get("relative", 0.0) * gs)
    status = "fail" if lc > us + m else "pass" if uc <= ls + m else "pending"
    detail = f"canary gap {gc:.4g} in [{lc:.4g}, {uc:.4g}] vs stable {gs:.4g} in [{ls:.4g}, {us:.4g}], margin {m:.4g}"
    return Check(name, "metric", status, detail, gc - gs, lc - us, uc - ls, m, int(fewest.sum()))


def _gap(table: np.ndarray, alpha: float, horizon: int) -> tuple[float, float, float]:
    """(gap, lower, upper): the largest difference between two groups' rates, with bounds."""
    bounds = [sequential.proportion(int(k), int(n), alpha, horizon) for n, k in table]
    est = max(b[0] for b in bounds) - min(b[0] for b in bounds)
    upper = max(b[2] for b in bounds) - min(b[1] for b in bounds)
    lower = max(0.0, max(b[1] for b in bounds) - min(b[2] for b in bounds))
    return est, lower, upper
