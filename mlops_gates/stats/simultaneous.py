"""Intervals for the largest gap between several groups' rates, with valid coverage.

The percentile bootstrap of max - min (or min / max) over groups is biased upwards and under-covers, worst
when the groups barely differ (a true gap of 0 lay outside nearly every interval). Here each group's rate
gets a simultaneous interval from the bootstrap distribution of the largest studentized deviation over all the
rates in the family (max-t; Romano and Wolf, 2005, and the simultaneous bootstrap bands of Montiel Olea and
Plagborg-Moller, 2019); when every rate lies in its interval, every function of them lies in the bounds
derived from the intervals (max of the uppers minus min of the lowers, and so on). So the derived interval
covers with at least the family's probability, whatever the true gaps are.

A family is a matrix of replicates (1 + R, columns): row 0 the point values, columns the rates of every group
(of one model, or of both models for a comparison). Undefined replicate values (a group drawn without a
positive) are ignored in that replicate.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class Family:
    """Rates with their bootstrap: point values, standard errors and the max-t distribution."""

    point: np.ndarray  # (columns,)
    se: np.ndarray  # (columns,)
    tmax: np.ndarray  # (R,): the largest studentized deviation of each replicate
    low: float | np.ndarray = 0.0  # each column's range: bands are clipped to it
    high: float | np.ndarray = 1.0

    @classmethod
    def of(
        cls,
        values: np.ndarray,
        se_floor: np.ndarray | None = None,
        low: float | np.ndarray = 0.0,
        high: float | np.ndarray = 1.0,
    ) -> Family:
        point, reps = values[0], values[1:]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            se = np.nanstd(reps, axis=0)
            if se_floor is not None:
                se = np.maximum(se, se_floor)
            se = np.where(se > 0, se, np.nan)
            t = np.abs(reps - point) / se
            tmax = np.nanmax(np.where(np.isnan(t), -np.inf, t), axis=1)
        return cls(point, np.nan_to_num(se, nan=0.0), np.where(np.isfinite(tmax), tmax, 0.0), low, high)

    def bands(self, c: float) -> tuple[np.ndarray, np.ndarray]:
        """Every rate's interval at critical value c."""
        return np.clip(self.point - c * self.se, self.low, self.high), np.clip(
            self.point + c * self.se, self.low, self.high
        )

    def critical(self, confidence: float) -> float:
        return float(np.quantile(self.tmax, confidence)) if len(self.tmax) else float("inf")

    def level(self, c: float) -> float:
        """The share of replicates whose largest deviation reaches c: 1 - the band's coverage at c."""
        return float((np.sum(self.tmax >= c) + 1) / (len(self.tmax) + 1))


Bounds = Callable[[np.ndarray, np.ndarray], tuple[float, float]]


def gap_bounds(parts: list[slice], agg: str) -> Bounds:
    """Bounds on a between-group criterion from the rates' bands: `parts` are the column ranges of the rates
    combined (two for equalized odds), `agg` difference (max - min), ratio (min / max) or overall (largest
    distance to the overall rate: columns hold group - overall contrasts)."""

    def one(lo: np.ndarray, hi: np.ndarray) -> tuple[float, float]:
        if agg == "difference":
            return max(0.0, float(lo.max() - hi.min())), float(hi.max() - lo.min())
        if agg == "ratio":
            top, bottom = float(hi.max()), float(lo.max())
            low = float(lo.min()) / top if top > 0 else 0.0
            high = min(1.0, float(hi.min()) / bottom) if bottom > 0 else 1.0
            return max(0.0, low), high
        far = float(np.max(np.maximum(np.abs(lo), np.abs(hi))))
        near = float(np.max(np.where((lo <= 0) & (hi >= 0), 0.0, np.minimum(np.abs(lo), np.abs(hi)))))
        return near, far

    def bounds(lo: np.ndarray, hi: np.ndarray) -> tuple[float, float]:
        each = [one(lo[p], hi[p]) for p in parts]
        pick = min if agg == "ratio" else max  # equalized odds: the worse of the two rates' criteria
        return pick(b[0] for b in each), pick(b[1] for b in each)

    return bounds


def widening_bounds(cand: list[slice], base: list[slice], paired: list[slice], agg: str) -> Bounds:
    """Bounds on criterion(candidate) - criterion(baseline), from one family holding both models' rates and
    their per-group paired differences d = candidate - baseline (the same replicates).

    Two bounds hold whenever every band covers, and the tighter of each side is kept: the candidate's
    interval minus the baseline's, and, for a max - min gap, the spread of the paired differences (gap(c) -
    gap(b) lies within +/- (max d - min d), as max(b + d) <= max b + max d): paired, its bands are narrow, so
    a candidate that moves every group alike is not held for the noise of either model's gap alone."""
    c_gap, b_gap = gap_bounds(cand, agg), gap_bounds(base, agg)

    def bounds(lo: np.ndarray, hi: np.ndarray) -> tuple[float, float]:
        c_lo, c_hi = c_gap(lo, hi)
        b_lo, b_hi = b_gap(lo, hi)
        low, high = c_lo - b_hi, c_hi - b_lo
        if agg == "difference":
            spread = [float(hi[p].max() - lo[p].min()) for p in paired]
            # equalized odds: max(a, b) - max(c, d) lies within [min(a - c, b - d), max(a - c, b - d)]
            low, high = max(low, min(-x for x in spread)), min(high, max(spread))
        return low, high

    return bounds


def judge(
    family: Family, bounds: Bounds, op: str, threshold: float, confidence: float
) -> tuple[float, float, tuple[float, float]]:
    """(p_bad, p_good, interval) on the one-sided scale the other tests use: the interval at `confidence`
    (simultaneous over the family); p_bad is half the level at which the interval's good bound reaches the
    threshold, so p_bad < (1 - confidence) / 2 exactly when the interval lies wholly on the good side."""
    interval = bounds(*family.bands(family.critical(confidence)))
    upper_good = op in ("<=", "<")  # the upper bound must stay below the threshold

    def crossing(which: int) -> float:
        """Half the level of the band whose bound `which` (0 low, 1 high) sits at the threshold."""

        def beyond(c: float) -> bool:  # is the bound still on the threshold's far side at c?
            b = bounds(*family.bands(c))[which]
            return b < threshold if which == 1 else b > threshold

        if not beyond(0.0):
            return 0.5  # even the point is on the wrong side
        lo, hi = 0.0, max(float(family.tmax.max(initial=0.0)), 1.0) * 2
        if beyond(hi):
            return family.level(hi) / 2
        for _ in range(50):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if beyond(mid) else (lo, mid)
        return family.level(hi) / 2

    p_bad = crossing(1) if upper_good else crossing(0)
    p_good = crossing(0) if upper_good else crossing(1)
    return p_bad, p_good, interval
