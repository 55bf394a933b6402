"""Tests and intervals against a threshold: exact binomial, normal (with a standard-error floor), bootstrap
percentiles, Holm / Benjamini-Hochberg corrections, and the rows a check would need to be decided.

Every test returns (p_bad, p_good, interval): the chance of an estimate this far on the good (bad) side if the
true value sat exactly at the threshold. Knows nothing of gates or policies."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

Tested = tuple[float, float, tuple[float, float]]  # (p_bad, p_good, interval)

GOOD: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    ">=": lambda x, t: x >= t,
    ">": lambda x, t: x > t,
    "<=": lambda x, t: x <= t,
    "<": lambda x, t: x < t,
}


def good(op: str, x: np.ndarray, threshold: float) -> np.ndarray:
    return GOOD[op](x, threshold)


def _sides(op: str, low_side: float, high_side: float) -> tuple[float, float]:
    """(p_bad, p_good) from the chances of an estimate this low and this high."""
    return (low_side, high_side) if op in ("<=", "<") else (high_side, low_side)


def binomial(k: int, n: int, op: str, threshold: float, confidence: float) -> Tested:
    """A share k/n: exact binomial tail probabilities and the Clopper-Pearson interval."""
    from scipy.special import bdtr, bdtrc, betaincinv  # scipy.stats costs 2 s of import; these, 0.3 s

    a = (1 - confidence) / 2
    low_side, high_side = float(bdtr(k, n, threshold)), float(bdtrc(k - 1, n, threshold) if k else 1.0)
    lo = float(betaincinv(k, n - k + 1, a)) if k > 0 else 0.0
    hi = float(betaincinv(k + 1, n - k, 1 - a)) if k < n else 1.0
    return (*_sides(op, low_side, high_side), (lo, hi))


def normal(
    est: float,
    se: float,
    op: str,
    threshold: float,
    confidence: float,
    se_floor: Callable[[float], float] | None = None,
    limits: tuple[float, float] = (-math.inf, math.inf),
) -> Tested:
    """An estimate with a standard error, by the normal approximation. With a floor, the standard error at the
    threshold tests, and the interval holds every value the estimate is within z standard errors (at that
    value) of, within the metric's limits: a score interval."""
    from scipy.special import ndtr, ndtri

    def se_at(theta: float) -> float:
        return max(se, se_floor(theta)) if se_floor else se

    gap, s = est - threshold, se_at(threshold)
    z = gap / s if s > 0 else (0.0 if gap == 0 else math.copysign(math.inf, gap))
    tails = _sides(op, float(ndtr(z)), float(ndtr(-z)))
    zc = float(ndtri(1 - (1 - confidence) / 2))
    lo_lim, hi_lim = limits
    if se_floor is None:
        return (*tails, (max(lo_lim, est - zc * se_at(est)), min(hi_lim, est + zc * se_at(est))))

    def bound(sign: float) -> float:  # the farthest value on one side still within zc standard errors
        inside, outside = est, hi_lim if sign > 0 else lo_lim
        if abs(outside - est) <= zc * se_at(outside):
            return outside
        for _ in range(60):
            mid = (inside + outside) / 2
            inside, outside = (mid, outside) if abs(mid - est) <= zc * se_at(mid) else (inside, mid)
        return inside

    return (*tails, (bound(-1.0), bound(1.0)))


def bootstrap_p(reps: np.ndarray, op: str, threshold: float) -> tuple[float, float]:
    """(p_bad, p_good) from bootstrap replicates, as (k + 1) / (R + 1): never 0."""
    ok = good(op, reps, threshold)
    return float(((~ok).sum() + 1) / (len(reps) + 1)), float((ok.sum() + 1) / (len(reps) + 1))


def interval(values: np.ndarray, confidence: float) -> tuple[float, float] | None:
    """The percentile interval of the replicates values[1:] (values[0] is the point estimate)."""
    reps = values[1:]
    reps = reps[~np.isnan(reps)]
    if len(reps) == 0:
        return None
    a = (1 - confidence) / 2
    lo, hi = np.quantile(reps, [a, 1 - a])
    return float(lo), float(hi)


def adjust(p: list[float], method: str) -> list[float]:
    """Holm (family-wise error) or Benjamini-Hochberg (false discovery rate) adjusted p-values."""
    m = len(p)
    if method == "none" or m <= 1:
        return list(p)
    order = np.argsort(p)
    ps = np.asarray(p, dtype=float)[order]
    if method == "holm":
        adj = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * ps))
    else:
        adj = np.minimum.accumulate((m / np.arange(1, m + 1) * ps)[::-1])[::-1]
        adj = np.minimum(adj, 1.0)
    out = np.empty(m)
    out[order] = adj
    return out.tolist()


def to_decide(
    point: float, ci: tuple[float, float] | None, threshold: float | None, n: int, confidence: float
) -> dict[str, Any] | None:
    """How much data would settle an undecided check: the smallest distance from the threshold these rows
    detect with 80% power, and the rows that would decide if the point estimate were the truth. The standard
    error is read off the interval and assumed to shrink as 1 / sqrt(rows), as every interval here does."""
    if ci is None or threshold is None or np.isnan(point) or n <= 0 or not ci[1] > ci[0]:
        return None
    from scipy.special import ndtri

    z, power = float(ndtri(1 - (1 - confidence) / 2)), float(ndtri(0.8))
    se = (ci[1] - ci[0]) / (2 * z)
    mde = (z + power) * se
    gap = abs(point - threshold)
    if gap == 0:
        return {"mde": mde, "rows_needed": None, "factor": None}
    factor = max(1.0, (mde / gap) ** 2)
    return {"mde": mde, "rows_needed": int(math.ceil(n * factor)), "factor": factor}
