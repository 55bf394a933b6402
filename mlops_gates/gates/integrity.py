"""Integrity gate: facts about the evaluation file (contract, missing values, duplicates, conflicting
labels, leakage, class balance) and drift against reference data and between the two models' predictions."""

from __future__ import annotations

import numpy as np

from mlops_gates.gates.base import Check, Context, GateResult, judge, summarise
from mlops_gates.policy import GateSpec
from mlops_gates.stats.integrity import Drift

SMOOTH = 1e-4  # added to empty bins so PSI stays finite


def psi(ref: np.ndarray, cur: np.ndarray) -> float:
    p = ref / max(ref.sum(), 1) + SMOOTH
    q = cur / max(cur.sum(), 1) + SMOOTH
    p, q = p / p.sum(), q / q.sum()
    return float(((q - p) * np.log(q / p)).sum())


def ks(ref: np.ndarray, cur: np.ndarray) -> float:
    return float(np.max(np.abs(np.cumsum(ref) / max(ref.sum(), 1) - np.cumsum(cur) / max(cur.sum(), 1))))


def js(ref: np.ndarray, cur: np.ndarray) -> float:
    """Jensen-Shannon distance, base 2 (0 = same distribution, 1 = disjoint)."""
    from scipy.special import rel_entr

    p, q = ref / ref.sum(), cur / cur.sum()
    m = (p + q) / 2
    return float(np.sqrt(max(0.0, (rel_entr(p, m).sum() + rel_entr(q, m).sum()) / 2 / np.log(2))))


def chi2_p(ref: np.ndarray, cur: np.ndarray) -> float:
    """p-value of the chi-squared test that both sets share one distribution over the categories (Yates'
    correction on a 2x2 table). scipy.special, not scipy.stats: the latter costs 2 s of import."""
    from scipy.special import chdtrc

    keep = (ref + cur) > 0
    if keep.sum() < 2:
        return 1.0
    obs = np.vstack([ref[keep], cur[keep]]).astype(np.float64)
    exp = obs.sum(axis=1, keepdims=True) * obs.sum(axis=0, keepdims=True) / obs.sum()
    dof = obs.shape[1] - 1
    if dof == 1:  # Yates: move each count half a unit towards its expectation
        obs = obs + np.sign(exp - obs) * np.minimum(0.5, np.abs(exp - obs))
    return float(chdtrc(dof, ((obs - exp) ** 2 / exp).sum()))


def _fact(
    metric: str, scope: str, value: float, n: int, op: str, thr: float, sev: str, note: str | None = None
) -> Check:
    return Check(metric, scope, np.array([value]), n, op, thr, sev, note=note, exact=True)


def _drift_tests(name: str, d: Drift, cfg: dict, sev: str) -> list[Check]:
    out = []
    n = int(d.cur.sum())
    if d.kind == "numeric":
        if "max_psi" in cfg:
            out.append(_fact("psi", name, psi(d.ref, d.cur), n, "<=", cfg["max_psi"], sev))
        if "max_ks" in cfg:
            out.append(_fact("ks", name, ks(d.ks_ref, d.ks_cur), n, "<=", cfg["max_ks"], sev))
    else:
        if "max_js" in cfg:
            out.append(_fact("js_distance", name, js(d.ref, d.cur), n, "<=", cfg["max_js"], sev))
        if "max_psi" in cfg:
            out.append(_fact("psi", name, psi(d.ref, d.cur), n, "<=", cfg["max_psi"], sev))
        if "min_chi2_pvalue" in cfg:
            out.append(_fact("chi2_pvalue", name, chi2_p(d.ref, d.cur), n, ">=", cfg["min_chi2_pvalue"], sev))
    return out


def _prediction_drift(ctx: Context, cfg: dict, sev: str) -> list[Check]:
    stats = ctx.stats
    out = []
    if stats.has_score["c"] and stats.has_score["b"]:
        nb = len(stats.edges) + 1
        t = stats.cells.groupby(("cbin", "bbin"))
        cur = np.bincount(t.keys["cbin"], weights=t.n, minlength=nb)
        ref = np.bincount(t.keys["bbin"], weights=t.n, minlength=nb)
        # PSI on the baseline's deciles, as for features
        cum = np.cumsum(ref) / ref.sum()
        cuts = np.unique(np.searchsorted(cum, np.arange(1, 10) / 10))
        group = np.searchsorted(cuts, np.arange(nb), side="left")
        what = "score"
    else:
        t = stats.cells.groupby(("c", "b"))
        K = len(stats.classes)
        cur = np.bincount(t.keys["c"], weights=t.n, minlength=K)
        ref = np.bincount(t.keys["b"], weights=t.n, minlength=K)
        group = np.arange(K)
        what = "predicted class"
    n = int(cur.sum())
    if "max_psi" in cfg:
        m = group.max() + 1
        out.append(
            _fact(
                "prediction_psi",
                f"candidate vs baseline {what}",
                psi(np.bincount(group, ref, m), np.bincount(group, cur, m)),
                n,
                "<=",
                cfg["max_psi"],
                sev,
            )
        )
    if "max_ks" in cfg:
        out.append(
            _fact("prediction_ks", f"candidate vs baseline {what}", ks(ref, cur), n, "<=", cfg["max_ks"], sev)
        )
    return out


def evaluate(spec: GateSpec, ctx: Context) -> GateResult:
    cfg, sev = spec.config, spec.severity
    facts = ctx.stats.integrity
    assert facts is not None
    n = facts.rows
    tests: list[Check] = []
    for v in facts.violations:
        tests.append(
            _fact(
                "contract_violations",
                f"{v['column']}: {v['check']}",
                v["count"],
                n,
                "<=",
                0,
                sev,
                note=v["detail"],
            )
        )
    for col, rule in cfg.get("contract", {}).items():
        if not any(v["column"] == col for v in facts.violations):
            tests.append(
                _fact("contract_violations", f"{col}: {', '.join(rule) or 'present'}", 0, n, "<=", 0, sev)
            )
    if "max_missing_rate" in cfg:
        for col in facts.features:
            tests.append(
                _fact("missing_rate", col, facts.missing[col] / n, n, "<=", cfg["max_missing_rate"], sev)
            )
    if "max_duplicate_rate" in cfg:
        tests.append(
            _fact(
                "duplicate_rate",
                "rows",
                facts.duplicates / n,
                n,
                "<=",
                cfg["max_duplicate_rate"],
                sev,
                note=f"{facts.duplicates} duplicate rows",
            )
        )
    if "max_conflicting_label_rate" in cfg:
        tests.append(
            _fact(
                "conflicting_label_rate",
                "rows",
                facts.conflicts / n,
                n,
                "<=",
                cfg["max_conflicting_label_rate"],
                sev,
                note=f"{facts.conflicts} rows share features with a row of another label",
            )
        )
    if "max_leakage_rate" in cfg and facts.leakage is not None:
        tests.append(
            _fact(
                "leakage_rate",
                "rows also in training data",
                facts.leakage / n,
                n,
                "<=",
                cfg["max_leakage_rate"],
                sev,
                note=f"{facts.leakage} evaluation rows appear in the training data",
            )
        )
    if "min_class_rate" in cfg:
        t = ctx.stats.cells.groupby(("y",)) if ctx.stats.task != "regression" else None
        if t is not None:
            counts = np.bincount(t.keys["y"], weights=t.n, minlength=len(ctx.stats.classes))
            for k, cls in enumerate(ctx.stats.classes):
                tests.append(
                    _fact("class_rate", f"label={cls}", counts[k] / n, n, ">=", cfg["min_class_rate"], sev)
                )
    for name, d in facts.drift.items():
        tests += _drift_tests(name, d, cfg.get("drift", {}), sev)
    if "prediction_drift" in cfg:
        tests += _prediction_drift(ctx, cfg["prediction_drift"], sev)
    return summarise(spec.name, spec.type, judge(tests, ctx.policy), ctx.policy)
