"""How checks become statuses: each check's test (stats.inference), the correction across a gate's checks,
the policy's settings (confidence, decision mode, smallest group), then one summary per gate."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlops_gates.gates.base import RANK, GateResult, MetricResult, Status, insufficient_status
from mlops_gates.policy import Policy, Settings
from mlops_gates.stats import inference, simultaneous


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


def _good(t: Check, x: np.ndarray) -> np.ndarray:
    assert t.op is not None and t.threshold is not None
    return inference.good(t.op, x, t.threshold)


def _direct(t: Check, confidence: float) -> inference.Tested:
    """(p_bad, p_good, interval) of a check that is not judged on its bootstrap percentiles."""
    assert t.op is not None and t.threshold is not None
    if t.counts is not None:
        return inference.binomial(*t.counts, t.op, t.threshold, confidence)
    if t.se is not None:
        est = float(t.values[0])
        return inference.normal(est, float(t.se), t.op, t.threshold, confidence, t.se_floor, t.limits)
    assert t.simultaneous is not None
    family, bounds = t.simultaneous
    return simultaneous.judge(family, bounds, t.op, t.threshold, confidence)


def _verdicts(
    judged: list[Check], direct: dict[int, inference.Tested], s: Settings
) -> dict[int, tuple[Status, float, float]]:
    """PASS when the bad side is unlikely; FAIL when the good side is, after the correction; else undecided."""
    alpha = (1 - s.confidence) / 2
    p_bad: list[float] = []
    p_good: list[float] = []
    for t in judged:
        if id(t) in direct:
            p_bad.append(direct[id(t)][0])
            p_good.append(direct[id(t)][1])
            continue
        assert t.op is not None and t.threshold is not None
        reps = t.values[1:]
        bad, ok = inference.bootstrap_p(reps[~np.isnan(reps)], t.op, t.threshold)
        p_bad.append(bad)
        p_good.append(ok)
    adj = inference.adjust(p_good, s.correction)
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
    return verdicts


def judge(tests: list[Check], policy: Policy) -> list[MetricResult]:
    """Turn tests into statuses: interval wholly good -> PASS, wholly bad -> FAIL, straddling -> INCONCLUSIVE.

    PROMOTE needs every check to PASS: an intersection-union test (Berger, 1982), whose level is each
    check's level with no correction, so PASS is judged on each check's own p-value. What a correction
    controls is the other error, across the checks of a gate: a model wrongly REJECTed because one of many
    checks looked bad by chance. With `correction`, FAIL needs the Holm (family-wise) or Benjamini-Hochberg
    (false discovery rate) adjusted p-value of the good side below (1 - confidence) / 2.
    """
    s = policy.settings
    # a bootstrap of a handful of rows has no spread to speak of: too little evidence to judge
    for t in tests:
        if t.forced is None and not t.exact and t.op is not None and t.n < s.min_group_size:
            t.forced = insufficient_status(policy)
            t.note = f"insufficient evidence: {t.n} rows < min_group_size {s.min_group_size}"
    judged = [
        t
        for t in tests
        if t.forced is None and t.op is not None and not t.exact and not np.isnan(t.values[0])
    ]
    direct = {  # shares of rows, analytic variances and simultaneous bounds: tests and intervals, once each
        id(t): _direct(t, s.confidence)
        for t in tests
        if (t.counts is not None or t.se is not None or t.simultaneous is not None)
        and t.op is not None
        and not np.isnan(t.values[0])
    }
    verdicts = _verdicts(judged, direct, s)
    return [_result(t, verdicts, direct, s) for t in tests]


def _result(
    t: Check,
    verdicts: dict[int, tuple[Status, float, float]],
    direct: dict[int, inference.Tested],
    s: Settings,
) -> MetricResult:
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
        ci = direct[id(t)][2] if id(t) in direct else inference.interval(t.values, s.confidence)
    return MetricResult(
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
        inference.to_decide(point, ci, t.threshold, t.n, s.confidence) if st == Status.INCONCLUSIVE else None,
    )


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
