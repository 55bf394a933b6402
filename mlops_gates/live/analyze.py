"""Canary (or an A/B arm) against the stable version on the same live traffic, judged with bounds that hold at
every look (stats/sequential.py): however often a rollout asks, the chance of ever promoting a canary truly
worse than a margin stays at most alpha.

Verdicts: PROMOTE (every check passed), CONTINUE (not decided yet: keep the traffic where it is and look
again), ROLLBACK (a check failed: a metric is worse than its margin, a guardrail is broken, or the traffic split
is not what the router was told, which invalidates everything else), HOLD (cannot judge: an arm has no
traffic, no labels have arrived, or the horizon passed undecided). Never a pass because data was missing."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlops_gates.errors import DataError, GateError
from mlops_gates.live.check import Check
from mlops_gates.live.fairness import gap_check
from mlops_gates.live.logs import files, read_window
from mlops_gates.live.state import ArmState, LiveState, Sums
from mlops_gates.policy import Dataset, Policy
from mlops_gates.policy.model import LIVE_COLUMNS
from mlops_gates.stats import sequential

VERSION = re.compile(r"[A-Za-z0-9._:@/+-]{1,200}")  # what a log, a pod hash or a deployment name holds
HIGHER_IS_BETTER = {"accuracy": True, "log_loss": False, "brier": False, "mae": False}


@dataclass(frozen=True)
class Settings:
    """promotion.analysis, with its defaults."""

    alpha: float = 0.05
    horizon: int = 20_000
    max_rows: int | None = None
    min_rows: int = 200
    split: float = 0.5
    srm_alpha: float = 0.001
    columns: dict[str, str] = field(default_factory=lambda: dict(LIVE_COLUMNS))
    metrics: tuple[dict[str, Any], ...] = ()
    guardrails: dict[str, Any] = field(default_factory=dict)
    prometheus: dict[str, Any] = field(default_factory=dict)
    fairness: tuple[dict[str, Any], ...] = ()

    @classmethod
    def of(cls, pol: Policy) -> Settings:
        if pol.promotion is None or not pol.promotion.analysis:
            raise GateError(
                "the policy has no promotion.analysis block",
                where=str(pol.path),
                hint="add promotion.analysis with the metrics and guardrails to judge (docs/live.md)",
            )
        a = pol.promotion.analysis
        return cls(
            alpha=a.get("alpha", 0.05),
            horizon=a.get("horizon", 20_000),
            max_rows=a.get("max_rows"),
            min_rows=a.get("min_rows", 200),
            split=a.get("split", 0.5),
            srm_alpha=a.get("srm_alpha", 0.001),
            columns={**LIVE_COLUMNS, **a.get("columns", {})},
            metrics=tuple(a.get("metrics", ())),
            guardrails=dict(a.get("guardrails", {})),
            prometheus=dict(a.get("prometheus", {})),
            fairness=tuple(a.get("fairness", ())),
        )


@dataclass
class Analysis:
    verdict: str
    canary: str
    stable: str
    checks: list[Check]
    rows: dict[str, dict[str, int]]
    reasons: list[str]
    settings: Settings

    def record(self) -> dict[str, Any]:
        return {
            "schema": "mlops-gates/analysis/v1",
            "verdict": self.verdict,
            "canary": self.canary,
            "stable": self.stable,
            "rows": self.rows,
            "reasons": self.reasons,
            "checks": [{k: _finite(v) for k, v in asdict(c).items() if v is not None} for c in self.checks],
            "guarantee": (
                f"every bound holds at every look at once with probability >= {1 - self.settings.alpha:g} "
                f"(confidence sequences tuned for {self.settings.horizon} labelled rows)"
            ),
        }


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def analyze(
    pol: Policy,
    requests: Sequence[Path],
    labels: Sequence[Path],
    canary: str,
    stable: str,
    split: float | None = None,
) -> Analysis:
    """Read the logs, judge every check the policy names, decide."""
    s = Settings.of(pol)
    state = new_state(pol, s, canary, stable)
    for ds in files(requests):
        feed_requests(state, s, ds, split)
    for ds in files(labels):
        feed_labels(state, s, ds)
    return judge(state, s)


def new_state(pol: Policy, s: Settings, canary: str, stable: str) -> LiveState:
    if canary == stable:
        raise GateError("the canary and the stable version are the same", hint="name two versions")
    for v in (canary, stable):
        if not VERSION.fullmatch(v):
            raise GateError(
                f"{v[:80]!r} is not a version name", hint="letters, digits and . _ : @ / + - (at most 200)"
            )
    cap = s.guardrails.get("latency", {}).get("max_ms")
    metrics = tuple(m["metric"] for m in s.metrics)
    fairness = tuple((f["column"], f["rate"]) for f in s.fairness)
    return LiveState(canary, stable, pol.task, pol.positive_label, metrics, cap, fairness)


def feed_requests(state: LiveState, s: Settings, ds: Dataset, split: float | None) -> None:
    """One window of requests into the state; every column a check needs must be there."""
    groups = {f"group:{f['column']}": f["column"] for f in s.fairness}
    t = read_window(ds, {**s.columns, **groups}, [*_required(s), *groups])  # every role the log has
    shares = np.full(t.num_rows, s.split if split is None else split)
    if split is None and "split" in t.column_names:
        logged = pc.cast(t.column("split"), pa.float64()).to_numpy(zero_copy_only=False)
        if np.isnan(logged).any() or ((logged <= 0) | (logged >= 1)).any():
            raise DataError(
                "the split column holds values outside (0, 1) or gaps",
                where=str(ds.path),
                hint="log the canary's share of traffic as a fraction on every request",
            )
        shares = logged
    state.add_requests(t, shares)


def feed_labels(state: LiveState, s: Settings, ds: Dataset) -> None:
    names = {"request_id": s.columns["request_id"], "label": s.columns["label"]}
    try:
        state.add_labels(read_window(ds, names, ("request_id", "label")))
    except DataError as exc:
        raise DataError(exc.message, where=str(ds.path), hint=exc.hint) from None


def judge(state: LiveState, s: Settings) -> Analysis:
    """The checks on what the state holds, and the verdict."""
    c, st = state.arms
    rows: dict[str, dict[str, int]] = {
        a.name: {"requests": a.requests, "labelled": a.labelled} for a in (c, st)
    }
    rows["other versions"] = {"requests": state.others}
    empty = [a.name for a in (c, st) if a.requests == 0]
    if empty:
        reasons = [f"no traffic reached {', '.join(empty)}: cannot judge"]
        return Analysis("HOLD", c.name, st.name, [], rows, reasons, s)
    checks = [_srm(s, state)]
    checks += [_metric(s, m, c, st) for m in s.metrics]
    checks += [gap_check(rule, state, s.alpha, s.horizon) for rule in s.fairness]
    checks += _guardrails(s, state)
    if s.prometheus:
        from mlops_gates.live import prometheus

        checks += prometheus.checks(s.prometheus, state)
    verdict, reasons = _decide(s, checks, rows)
    return Analysis(verdict, c.name, st.name, checks, rows, reasons, s)


def _required(s: Settings) -> list[str]:
    """The columns the policy's checks cannot do without."""
    need = ["request_id", "version"]
    names = {m["metric"] for m in s.metrics}
    need += ["prediction"] if names & {"accuracy", "mae"} else []
    need += ["score"] if names & {"log_loss", "brier"} else []
    g = s.guardrails
    need += ["error"] if "error_rate" in g else []
    need += ["latency"] if "latency" in g else []
    return need


def _decide(s: Settings, checks: list[Check], rows: dict[str, dict[str, int]]) -> tuple[str, list[str]]:
    failed = [c for c in checks if c.status == "fail"]
    if failed:
        return "ROLLBACK", [f"{c.name}: {c.detail}" for c in failed]
    blind = [c for c in checks if c.status == "cannot judge"]
    if blind:
        return "HOLD", [f"{c.name}: {c.detail}" for c in blind]
    if all(c.status == "pass" for c in checks):
        return "PROMOTE", ["every check passed"]
    pending = [f"{c.name}: {c.detail}" for c in checks if c.status == "pending"]
    labelled = sum(r.get("labelled", 0) for r in rows.values())
    if s.max_rows is not None and labelled >= s.max_rows:
        return "HOLD", [
            f"undecided after {labelled} labelled rows (max_rows {s.max_rows}): inconclusive",
            *pending,
        ]
    return "CONTINUE", pending


def _srm(s: Settings, state: LiveState) -> Check:
    """Sample-ratio mismatch: is the canary's share of the two arms' traffic what the router was told?"""
    c, st = state.arms
    n = c.requests + st.requests
    p = state.split_expected / n
    centred = c.requests - state.split_expected
    horizon_v = max(s.horizon * p * (1 - p), 1.0)
    share = c.requests / n
    if sequential.ratio_mismatch(centred, state.split_variance, s.srm_alpha, horizon_v):
        detail = f"the canary got {share:.2%} of {n} requests; the router was told {p:.2%}"
        return Check("traffic split", "srm", "fail", detail, share, limit=p, rows=n)
    return Check(
        "traffic split", "srm", "pass", f"{share:.2%} of {n} (expected {p:.2%})", share, limit=p, rows=n
    )


def _compare(
    name: str,
    kind: str,
    higher: bool,
    margin: dict[str, float],
    sc: Sums,
    ss: Sums,
    s: Settings,
    bernoulli: bool,
) -> Check:
    """Canary minus stable, against the margin, with a confidence sequence."""
    if min(sc.n, ss.n) < s.min_rows:
        return Check(
            name,
            kind,
            "pending",
            f"{sc.n} and {ss.n} rows; judged from {s.min_rows} per arm",
            rows=sc.n + ss.n,
        )
    mc, ms = sc.mean, ss.mean
    est, lo, hi = sequential.difference(
        mc, sc.variance(bernoulli), sc.n, ms, ss.variance(bernoulli), ss.n, s.alpha, s.horizon
    )
    m = margin.get("absolute", margin.get("relative", 0.0) * abs(ms))
    limit = -m if higher else m
    worse_for_sure = hi < limit if higher else lo > limit
    fine_for_sure = lo > limit if higher else hi < limit
    status = "fail" if worse_for_sure else "pass" if fine_for_sure else "pending"
    detail = f"canary {mc:.4g} vs stable {ms:.4g}: difference {est:+.4g} in [{lo:+.4g}, {hi:+.4g}], limit {limit:+.4g}"
    return Check(name, kind, status, detail, est, lo, hi, limit, sc.n + ss.n)


def _metric(s: Settings, m: dict[str, Any], c: ArmState, st: ArmState) -> Check:
    name = m["metric"]
    blind = [a.name for a in (c, st) if a.labelled == 0]
    if blind:
        return Check(name, "metric", "cannot judge", f"no labelled rows for {', '.join(blind)} yet")
    higher = HIGHER_IS_BETTER[name]
    return _compare(
        name, "metric", higher, m["margin"], c.metrics[name], st.metrics[name], s, name == "accuracy"
    )


def _guardrails(s: Settings, state: LiveState) -> list[Check]:
    g, out = s.guardrails, []
    c, st = state.arms
    if "error_rate" in g:
        out.append(
            _compare(
                "error rate", "guardrail", False, g["error_rate"]["margin"], c.errors, st.errors, s, True
            )
        )
    if "latency" in g:
        out.append(_latency(s, g["latency"], state))
    if "prediction_psi" in g:
        out.append(_prediction_psi(s, g["prediction_psi"]["max"], c, st))
    return out


def _latency(s: Settings, rule: dict[str, float], state: LiveState) -> Check:
    """The canary's latency quantile under max_ms, as a share: at most 1 - quantile of requests over max_ms."""
    c = state.arms[0]
    q, cap = rule["quantile"], rule["max_ms"]
    name = f"latency p{q * 100:g}"
    if c.timed < s.min_rows:
        return Check(name, "guardrail", "pending", f"{c.timed} timed requests; judged from {s.min_rows}")
    est, lo, hi = sequential.proportion(c.over, c.timed, s.alpha, s.horizon)
    allowed = 1 - q
    status = "fail" if lo > allowed else "pass" if hi < allowed else "pending"
    detail = (
        f"p{q * 100:g} about {state.latency_quantile(0, q):.4g} ms; {est:.3%} over {cap:g} ms in "
        f"[{lo:.3%}, {hi:.3%}], allowed {allowed:.3%}"
    )
    return Check(name, "guardrail", status, detail, est, lo, hi, allowed, c.timed)


def _prediction_psi(s: Settings, cap: float, c: ArmState, st: ArmState) -> Check:
    """The canary's predictions against stable's on the same traffic: PSI over deciles (or classes)."""
    from mlops_gates.stats.drift import psi

    if min(c.requests, st.requests) < s.min_rows:
        return Check("prediction shift", "guardrail", "pending", f"judged from {s.min_rows} requests per arm")
    keys = sorted(set(c.predictions) | set(st.predictions))
    hc, hs = (np.array([a.predictions.get(k, 0) for k in keys], dtype=float) for a in (c, st))
    value = psi(hs, hc)
    status = "fail" if value > cap else "pass"
    return Check(
        "prediction shift",
        "guardrail",
        status,
        f"PSI {value:.4f} (max {cap:g})",
        value,
        limit=cap,
        rows=c.requests + st.requests,
    )
