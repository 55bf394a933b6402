"""Canary (or an A/B arm) against the stable version on the same live traffic, judged with bounds that hold at
every look (stats/sequential.py): however often a rollout asks, the chance of ever promoting a canary truly
worse than a margin stays at most alpha.

Verdicts: PROMOTE (every check passed), CONTINUE (not decided yet: keep the traffic where it is and look
again), ROLLBACK (a check failed: a metric is worse than its margin, a guardrail is broken, or the traffic split
is not what the router was told, which invalidates everything else), HOLD (cannot judge: an arm has no
traffic, no labels have arrived, or the horizon passed undecided). Never a pass because data was missing."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlops_gates.errors import DataError, GateError
from mlops_gates.live.logs import Arm, read_arms
from mlops_gates.policy import Policy
from mlops_gates.policy.model import LIVE_COLUMNS
from mlops_gates.stats import sequential

HIGHER_IS_BETTER = {"accuracy": True, "log_loss": False, "brier": False, "mae": False}
EPS = 1e-15


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
        )


@dataclass
class Check:
    name: str
    kind: str  # srm, metric, guardrail
    status: str  # pass, fail, pending, cannot judge
    detail: str
    estimate: float | None = None
    lower: float | None = None
    upper: float | None = None
    limit: float | None = None
    rows: int | None = None


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
    if canary == stable:
        raise GateError("the canary and the stable version are the same", hint="name two versions")
    roles = _roles(s)
    c, st, others = read_arms(requests, labels, s.columns, roles, (canary, stable))
    rows = {arm.name: {"requests": arm.requests, "labelled": arm.labelled().num_rows} for arm in (c, st)}
    rows["other versions"] = {"requests": others}
    empty = [arm.name for arm in (c, st) if arm.requests == 0]
    if empty:
        reasons = [f"no traffic reached {', '.join(empty)}: cannot judge"]
        return Analysis("HOLD", canary, stable, [], rows, reasons, s)
    checks = [_srm(s, c, st, split)]
    checks += [_metric(s, pol, m, c, st) for m in s.metrics]
    checks += _guardrails(s, c, st)
    verdict, reasons = _decide(s, checks, rows)
    return Analysis(verdict, canary, stable, checks, rows, reasons, s)


def _roles(s: Settings) -> list[str]:
    """The log columns the policy's checks read."""
    roles = ["split"]
    if s.metrics:
        roles += ["label", "prediction", "score"]
    g = s.guardrails
    roles += ["error"] if "error_rate" in g else []
    roles += ["latency"] if "latency" in g else []
    roles += ["prediction", "score"] if "prediction_psi" in g else []
    return list(dict.fromkeys(roles))


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


def _srm(s: Settings, c: Arm, st: Arm, split: float | None) -> Check:
    """Sample-ratio mismatch: is the canary's share of the two arms' traffic what the router was told?"""
    n = c.requests + st.requests
    shares = np.concatenate([_split(s, a, split) for a in (c, st)])
    centred = float(c.requests - shares.sum())
    variance = float((shares * (1 - shares)).sum())
    p = float(shares.mean())
    horizon_v = max(s.horizon * p * (1 - p), 1.0)
    if sequential.ratio_mismatch(centred, variance, s.srm_alpha, horizon_v):
        detail = f"the canary got {c.requests / n:.2%} of {n} requests; the router was told {p:.2%}"
        return Check("traffic split", "srm", "fail", detail, c.requests / n, limit=p, rows=n)
    return Check(
        "traffic split",
        "srm",
        "pass",
        f"{c.requests / n:.2%} of {n} (expected {p:.2%})",
        c.requests / n,
        limit=p,
        rows=n,
    )


def _split(s: Settings, arm: Arm, given: float | None) -> np.ndarray:
    if given is not None or not arm.has("split"):
        return np.full(arm.requests, s.split if given is None else given)
    logged = arm.floats("split")
    if np.isnan(logged).any() or ((logged <= 0) | (logged >= 1)).any():
        raise DataError(
            "the split column holds values outside (0, 1) or gaps",
            where=f"version {arm.name}",
            hint="log the canary's share of traffic as a fraction on every request",
        )
    return logged


def _per_row(pol: Policy, metric: str, arm: Arm) -> np.ndarray:
    """The metric's value on each labelled row of one arm."""
    rows = arm.labelled()
    if metric in ("log_loss", "brier"):
        _require(arm, "score")
        score = arm.floats("score", rows)
        y = pc.equal(arm.text("label", rows), str(pol.positive_label)).to_numpy(zero_copy_only=False)
        if metric == "brier":
            return (score - y) ** 2
        p = np.clip(score, EPS, 1 - EPS)
        return -(y * np.log(p) + (1 - y) * np.log(1 - p))
    _require(arm, "prediction")
    if metric == "mae":
        return np.abs(arm.floats("prediction", rows) - arm.floats("label", rows))
    same = pc.equal(arm.text("prediction", rows), arm.text("label", rows))
    return pc.fill_null(same, False).to_numpy(zero_copy_only=False).astype(float)


def _require(arm: Arm, role: str) -> None:
    if not arm.has(role):
        raise DataError(
            f"the logs have no {role} column for version {arm.name}",
            hint=f"log the served model's {role}, or name its column under promotion.analysis.columns",
        )


def _compare(
    name: str,
    kind: str,
    higher: bool,
    margin: dict[str, float],
    vc: np.ndarray,
    vs: np.ndarray,
    s: Settings,
    bernoulli: bool,
) -> Check:
    """Canary minus stable on per-row values, against the margin, with a confidence sequence."""
    nc, ns = len(vc), len(vs)
    if min(nc, ns) < s.min_rows:
        return Check(
            name, kind, "pending", f"{nc} and {ns} rows; judged from {s.min_rows} per arm", rows=nc + ns
        )
    mc, ms = float(vc.mean()), float(vs.mean())
    var_c, var_s = (
        (_bernoulli_var(vc), _bernoulli_var(vs))
        if bernoulli
        else (float(vc.var(ddof=1)), float(vs.var(ddof=1)))
    )
    est, lo, hi = sequential.difference(mc, var_c, nc, ms, var_s, ns, s.alpha, s.horizon)
    m = margin.get("absolute", margin.get("relative", 0.0) * abs(ms))
    limit = -m if higher else m
    worse_for_sure = hi < limit if higher else lo > limit
    fine_for_sure = lo > limit if higher else hi < limit
    status = "fail" if worse_for_sure else "pass" if fine_for_sure else "pending"
    detail = f"canary {mc:.4g} vs stable {ms:.4g}: difference {est:+.4g} in [{lo:+.4g}, {hi:+.4g}], limit {limit:+.4g}"
    return Check(name, kind, status, detail, est, lo, hi, limit, nc + ns)


def _bernoulli_var(v: np.ndarray) -> float:
    p = (v.sum() + 1) / (len(v) + 2)
    return float(p * (1 - p))


def _metric(s: Settings, pol: Policy, m: dict[str, Any], c: Arm, st: Arm) -> Check:
    name = m["metric"]
    blind = [a.name for a in (c, st) if a.labelled().num_rows == 0]
    if blind:
        return Check(name, "metric", "cannot judge", f"no labelled rows for {', '.join(blind)} yet")
    vc, vs = _per_row(pol, name, c), _per_row(pol, name, st)
    return _compare(name, "metric", HIGHER_IS_BETTER[name], m["margin"], vc, vs, s, name == "accuracy")


def _guardrails(s: Settings, c: Arm, st: Arm) -> list[Check]:
    g, out = s.guardrails, []
    if "error_rate" in g:
        for a in (c, st):
            _require(a, "error")
        ec, es = (
            pc.fill_null(pc.cast(a.table.column("error"), pa.bool_()), False)
            .to_numpy(zero_copy_only=False)
            .astype(float)
            for a in (c, st)
        )
        out.append(_compare("error rate", "guardrail", False, g["error_rate"]["margin"], ec, es, s, True))
    if "latency" in g:
        out.append(_latency(s, g["latency"], c))
    if "prediction_psi" in g:
        out.append(_prediction_psi(s, g["prediction_psi"]["max"], c, st))
    return out


def _latency(s: Settings, rule: dict[str, float], c: Arm) -> Check:
    """The canary's latency quantile under max_ms, as a share: at most 1 - quantile of requests over max_ms."""
    _require(c, "latency")
    lat = c.floats("latency")
    lat = lat[~np.isnan(lat)]
    q, cap = rule["quantile"], rule["max_ms"]
    name = f"latency p{q * 100:g}"
    if len(lat) < s.min_rows:
        return Check(name, "guardrail", "pending", f"{len(lat)} timed requests; judged from {s.min_rows}")
    over = int((lat > cap).sum())
    est, lo, hi = sequential.proportion(over, len(lat), s.alpha, s.horizon)
    allowed = 1 - q
    status = "fail" if lo > allowed else "pass" if hi < allowed else "pending"
    detail = (
        f"p{q * 100:g} {np.quantile(lat, q):.4g} ms; {est:.3%} over {cap:g} ms in [{lo:.3%}, {hi:.3%}], "
        f"allowed {allowed:.3%}"
    )
    return Check(name, "guardrail", status, detail, est, lo, hi, allowed, len(lat))


def _prediction_psi(s: Settings, cap: float, c: Arm, st: Arm) -> Check:
    """The canary's predictions against stable's on the same traffic: PSI over stable's deciles (or classes)."""
    from mlops_gates.stats.drift import psi

    scored = all(a.has("score") and pa.types.is_floating(a.table.column("score").type) for a in (c, st))
    role = "score" if scored else "prediction"
    for a in (c, st):
        _require(a, role)
    if min(c.requests, st.requests) < s.min_rows:
        return Check("prediction shift", "guardrail", "pending", f"judged from {s.min_rows} requests per arm")
    if scored:
        a, b = (x[~np.isnan(x)] for x in (c.floats("score"), st.floats("score")))
        edges = np.unique(np.quantile(b, np.linspace(0, 1, 11)[1:-1]))
        hc, hs = (
            np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1) for x in (a, b)
        )
    else:
        counts = [pc.value_counts(pc.fill_null(x.text("prediction"), "")) for x in (c, st)]
        tallies = [
            dict(zip(v.field("values").to_pylist(), v.field("counts").to_pylist(), strict=True))
            for v in counts
        ]
        classes = sorted(set(tallies[0]) | set(tallies[1]))
        hc, hs = (np.array([t.get(k, 0) for k in classes]) for t in tallies)
    value = psi(hs.astype(float), hc.astype(float))
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
