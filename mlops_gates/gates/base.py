"""The gate interface: results with intervals, and how a test on an interval becomes a status."""

from __future__ import annotations

import enum
import math
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlops_gates.policy import GateSpec, Policy
from mlops_gates.stats.collect import EvalStats
from mlops_gates.stats.compute import Bootstrap, resample


class Status(str, enum.Enum):
    PASS = "PASS"
    WARN = "WARN"
    INCONCLUSIVE = "INCONCLUSIVE"
    FAIL = "FAIL"
    ERROR = "ERROR"
    SKIP = "SKIP"


# How bad each status is when a gate summarises its metrics.
RANK = {
    Status.SKIP: 0,
    Status.PASS: 1,
    Status.WARN: 2,
    Status.INCONCLUSIVE: 3,
    Status.ERROR: 4,
    Status.FAIL: 5,
}


@dataclass(frozen=True)
class MetricResult:
    metric: str
    scope: str  # "overall", "sex=Female", "sex (between groups)", ...
    status: Status
    value: float | None
    ci: tuple[float, float] | None
    n: int
    comparator: str | None = None
    threshold: float | None = None
    baseline: float | None = None  # the baseline's value, for comparisons
    p_value: float | None = None  # the chance of a result this good were the metric on the bad side (PASS)
    adjusted_p: float | None = None  # the good side's p-value after the correction (FAIL needs it small)
    severity: str = "fail"
    note: str | None = None
    to_decide: dict[str, Any] | None = (
        None  # INCONCLUSIVE: the effect these rows detect, the rows that decide
    )

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status.value
        d["ci"] = list(self.ci) if self.ci else None
        return {k: _clean(v) for k, v in d.items()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MetricResult:
        ci = d.get("ci")
        return cls(**{**d, "status": Status(d["status"]), "ci": (ci[0], ci[1]) if ci else None})


@dataclass(frozen=True)
class GateResult:
    name: str
    type: str
    status: Status
    reason: str
    metrics: tuple[MetricResult, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    correction: str = "none"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "status": self.status.value,
            "reason": self.reason,
            "correction": self.correction,
            "metrics": [m.to_json() for m in self.metrics],
            "details": _clean(self.details),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> GateResult:
        """Read back a gate from a decision record (publishing, promotion and audits start from the record)."""
        metrics = tuple(MetricResult.from_json(m) for m in d["metrics"])
        return cls(
            d["name"], d["type"], Status(d["status"]), d["reason"], metrics, d["details"], d["correction"]
        )


def _clean(v: Any) -> Any:
    """JSON-safe: NaN -> None (undefined), numpy scalars -> Python, floats rounded to 12 significant digits."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return None if math.isnan(f) or math.isinf(f) else float(f"{f:.12g}")
    return v


@dataclass
class Context:
    """What every gate sees: the policy, the statistics, and shared bootstrap resamples."""

    policy: Policy
    stats: EvalStats
    pinned: dict[str, Any] = field(default_factory=dict)  # role -> Pinned, when the policy names models
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> what its predict step measured
    out_dir: Path | None = None  # where gates may leave files beside the record (deepchecks' HTML)
    _cache: dict[tuple[Any, ...], Bootstrap] = field(default_factory=dict)
    _values: dict[tuple[Any, ...], Any] = field(default_factory=dict)

    def once(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        """Values computed once per run: both models' paired metrics come from one pass over the replicates
        (a large table is drawn again for every pass)."""
        if key not in self._values:
            self._values[key] = compute()
        return self._values[key]

    def resampled(self, names: tuple[str, ...], unit: str = "row", groups: bool = True) -> Bootstrap:
        """The shared bootstrap of the table on `names`: with the group key (per-group metrics) or without it
        (a metric of the whole set, whose table would only multiply its cells by the groups)."""
        key = (names, unit) if groups else (names, unit, "unstratified")
        if key not in self._cache:
            s = self.policy.settings
            seed = (s.seed * 1_000_003 + zlib.crc32(repr(key).encode())) % (2**32)
            design = tuple(self.stats.group_columns.index(c) for c in s.strata)
            self._cache[key] = resample(self.stats, names, s.replicates, seed, unit, groups, design)
        return self._cache[key]


# ------------------------------------------------------------------ judging
@dataclass
class Check:
    """A metric with its replicates, before the gate decides its status."""

    metric: str
    scope: str
    values: np.ndarray  # [point, replicate 1..R]
    n: int
    op: str | None
    threshold: float | None
    severity: str
    baseline: float | None = None
    note: str | None = None
    forced: Status | None = None  # a status decided before judging (insufficient group, undefined value)
    exact: bool = (
        False  # a fact about this file (a count), judged on its value; its interval is [value, value]
    )
    # a share of unweighted rows (hits, trials): judged by the exact binomial test, reported with its
    # Clopper-Pearson interval, as the percentile bootstrap is too lenient near a bound at small counts
    counts: tuple[int, int] | None = None
    # an estimate with an analytic standard error (DeLong's, for an AUC or a paired AUC difference): judged by
    # the normal test and reported with the normal interval; values holds the point alone
    se: float | None = None
    # a standard error the estimate's may not fall below, at a hypothesised true value (an AUC's: Hanley and
    # McNeil's, at the threshold for the test and at each candidate bound for the interval, as a score
    # interval does): at small n DeLong's can be 0 (a sample that separates perfectly), never a proof
    se_floor: Callable[[float], float] | None = None
    limits: tuple[float, float] = (-math.inf, math.inf)  # the metric's range: intervals stay inside it
    # a criterion over several groups' rates (fairness): judged on bounds derived from simultaneous intervals
    # of the rates (stats/simultaneous.py); values holds the point alone
    simultaneous: tuple[Any, Any] | None = None  # (Family, Bounds)


_GOOD: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    ">=": lambda x, t: x >= t,
    ">": lambda x, t: x > t,
    "<=": lambda x, t: x <= t,
    "<": lambda x, t: x < t,
}


def _good(t: Check, x: np.ndarray) -> np.ndarray:
    assert t.op is not None and t.threshold is not None
    return _GOOD[t.op](x, t.threshold)


def binomial(t: Check, confidence: float) -> tuple[float, float, tuple[float, float]]:
    """(p_bad, p_good, Clopper-Pearson interval) of a share k/n: the chance of a count this far on the good
    (bad) side if the true share sat exactly at the threshold."""
    from scipy.special import bdtr, bdtrc, betaincinv  # scipy.stats costs 2 s of import; these, 0.3 s

    assert t.counts is not None and t.threshold is not None
    k, n = t.counts
    a = (1 - confidence) / 2
    low_side, high_side = float(bdtr(k, n, t.threshold)), float(bdtrc(k - 1, n, t.threshold) if k else 1.0)
    p_bad, p_good = (low_side, high_side) if t.op in ("<=", "<") else (high_side, low_side)
    lo = float(betaincinv(k, n - k + 1, a)) if k > 0 else 0.0
    hi = float(betaincinv(k + 1, n - k, 1 - a)) if k < n else 1.0
    return p_bad, p_good, (lo, hi)


def normal(t: Check, confidence: float) -> tuple[float, float, tuple[float, float]]:
    """(p_bad, p_good, interval) of an estimate with a standard error, by the normal approximation; with a
    floor, the standard error at the threshold tests and the interval holds every value the estimate is
    within z standard errors (at that value) of, within the metric's limits."""
    from scipy.special import ndtr, ndtri

    assert t.se is not None and t.threshold is not None
    est = float(t.values[0])

    def se_at(theta: float) -> float:
        return max(t.se or 0.0, t.se_floor(theta)) if t.se_floor else float(t.se or 0.0)

    gap, se = est - t.threshold, se_at(t.threshold)
    z = gap / se if se > 0 else (0.0 if gap == 0 else math.copysign(math.inf, gap))
    # the chance of an estimate this low (high) if the true value sat exactly at the threshold
    low_side, high_side = float(ndtr(z)), float(ndtr(-z))
    p_bad, p_good = (low_side, high_side) if t.op in ("<=", "<") else (high_side, low_side)
    zc = float(ndtri(1 - (1 - confidence) / 2))
    lo_lim, hi_lim = t.limits
    if t.se_floor is None:
        return p_bad, p_good, (max(lo_lim, est - zc * se_at(est)), min(hi_lim, est + zc * se_at(est)))

    def bound(sign: float) -> float:  # the farthest value on one side still within zc standard errors
        inside, outside = est, hi_lim if sign > 0 else lo_lim
        if abs(outside - est) <= zc * se_at(outside):
            return outside
        for _ in range(60):
            mid = (inside + outside) / 2
            inside, outside = (mid, outside) if abs(mid - est) <= zc * se_at(mid) else (inside, mid)
        return inside

    return p_bad, p_good, (bound(-1.0), bound(1.0))


def _direct(t: Check, confidence: float) -> tuple[float, float, tuple[float, float]]:
    """(p_bad, p_good, interval) of a check that is not judged on its bootstrap percentiles."""
    if t.counts is not None:
        return binomial(t, confidence)
    if t.se is not None:
        return normal(t, confidence)
    from mlops_gates.stats import simultaneous

    assert t.simultaneous is not None and t.op is not None and t.threshold is not None
    family, bounds = t.simultaneous
    return simultaneous.judge(family, bounds, t.op, t.threshold, confidence)


def interval(values: np.ndarray, confidence: float) -> tuple[float, float] | None:
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


def judge(tests: list[Check], policy: Policy) -> list[MetricResult]:
    """Turn tests into statuses: interval wholly good -> PASS, wholly bad -> FAIL, straddling -> INCONCLUSIVE.

    PROMOTE needs every check to PASS: an intersection-union test (Berger, 1982), whose level is each
    check's level with no correction, so PASS is judged on each check's own p-value. What a correction
    controls is the other error, across the checks of a gate: a model wrongly REJECTed because one of many
    checks looked bad by chance. With `correction`, FAIL needs the Holm (family-wise) or Benjamini-Hochberg
    (false discovery rate) adjusted p-value of the good side below (1 - confidence) / 2.
    """
    s = policy.settings
    alpha = (1 - s.confidence) / 2
    # a bootstrap of a handful of rows has no spread to speak of: too little evidence to judge
    for t in tests:
        if t.forced is None and not t.exact and t.op is not None and t.n < s.min_group_size:
            t.forced = insufficient_status(policy)
            t.note = f"insufficient evidence: {t.n} rows < min_group_size {s.min_group_size}"
    p_bad: list[float] = []
    p_good: list[float] = []
    judged = [
        t
        for t in tests
        if t.forced is None and t.op is not None and not t.exact and not np.isnan(t.values[0])
    ]
    shares = {  # shares of rows, analytic variances and simultaneous bounds: tests and intervals, once each
        id(t): _direct(t, s.confidence)
        for t in tests
        if (t.counts is not None or t.se is not None or t.simultaneous is not None)
        and t.op is not None
        and not np.isnan(t.values[0])
    }
    for t in judged:
        if id(t) in shares:
            p_bad.append(shares[id(t)][0])
            p_good.append(shares[id(t)][1])
            continue
        reps = t.values[1:]
        reps = reps[~np.isnan(reps)]
        good = _good(t, reps)
        # (k + 1) / (R + 1): a bootstrap p-value is never 0
        p_bad.append(float(((~good).sum() + 1) / (len(reps) + 1)))
        p_good.append(float((good.sum() + 1) / (len(reps) + 1)))
    adj = adjust(p_good, s.correction)
    verdicts: dict[int, tuple[Status, float, float]] = {}
    for i, t in enumerate(judged):
        if s.decision_mode == "point":
            st = Status.PASS if _good(t, t.values[:1])[0] else Status.FAIL
        elif p_bad[i] < alpha:
            st = Status.PASS
        elif adj[i] < alpha:
            st = Status.FAIL
        else:
            st = Status.INCONCLUSIVE
        verdicts[id(t)] = (st, p_bad[i], adj[i])
    out = []
    for t in tests:
        point = float(t.values[0])
        p = a = None
        if t.forced is not None:
            st = t.forced
        elif t.op is None:
            st = Status.PASS  # reported, not tested
        elif np.isnan(point):
            st, t.note = Status.ERROR, t.note or "undefined on this data (0/0); it cannot be judged"
        elif t.exact:
            st = Status.PASS if _good(t, t.values[:1])[0] else Status.FAIL
        else:
            st, p, a = verdicts[id(t)]
        if t.severity == "warn" and st in (Status.FAIL, Status.INCONCLUSIVE):
            st = Status.WARN
        if t.exact:
            ci: tuple[float, float] | None = (point, point)
        else:
            ci = shares[id(t)][2] if id(t) in shares else interval(t.values, s.confidence)
        out.append(
            MetricResult(
                t.metric,
                t.scope,
                st,
                None if np.isnan(point) else point,
                ci,
                t.n,
                t.op,
                t.threshold,
                t.baseline,
                p,
                a if s.correction != "none" else None,
                t.severity,
                t.note,
                to_decide(point, ci, t.threshold, t.n, s.confidence) if st == Status.INCONCLUSIVE else None,
            )
        )
    return out


def to_decide(
    point: float, ci: tuple[float, float] | None, threshold: float | None, n: int, confidence: float
) -> dict[str, Any] | None:
    """How much data would settle an INCONCLUSIVE check: the smallest distance from the threshold these rows
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


def summarise(
    name: str, gtype: str, metrics: list[MetricResult], policy: Policy, details: dict[str, Any] | None = None
) -> GateResult:
    if not metrics:
        return GateResult(
            name, gtype, Status.ERROR, "the gate produced no metric to judge", (), details or {}
        )
    worst = max(metrics, key=lambda m: RANK[m.status]).status
    bad = [m for m in metrics if m.status == worst and worst not in (Status.PASS, Status.SKIP)]
    if bad:
        reason = "; ".join(f"{m.metric} [{m.scope}] {describe(m)}" for m in bad[:3]) + (
            f"; and {len(bad) - 3} more" if len(bad) > 3 else ""
        )
    else:
        reason = f"all {len(metrics)} checks passed"
    return GateResult(name, gtype, worst, reason, tuple(metrics), details or {}, policy.settings.correction)


def describe(m: MetricResult) -> str:
    if m.note and m.value is None:
        return m.note
    v = f"{m.value:.4g}" if m.value is not None else "undefined"
    ci = f" [{m.ci[0]:.4g}, {m.ci[1]:.4g}]" if m.ci else ""
    thr = f", needs {m.comparator} {m.threshold:.4g}" if m.comparator and m.threshold is not None else ""
    extra = f" ({m.note})" if m.note else ""
    return f"= {v}{ci}{thr}{extra}"


# What an `on:` action in the policy makes of a check it applies to.
ACTION = {
    "hold": Status.INCONCLUSIVE,
    "fail": Status.FAIL,
    "reject": Status.FAIL,
    "warn": Status.WARN,
    "skip": Status.SKIP,
}


def insufficient_status(policy: Policy) -> Status:
    """What the policy does with a group or slice too small to judge."""
    return ACTION[policy.on.insufficient_group]


GateFn = Callable[[GateSpec, Context], GateResult]
