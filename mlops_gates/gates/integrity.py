"""Integrity gate: facts about the evaluation file (contract, missing values, duplicates, conflicting
labels, leakage, class balance) and drift against reference data and between the two models' predictions."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlops_gates.gates.base import Context, GateResult
from mlops_gates.gates.judge import Check, judge, summarise
from mlops_gates.policy import GateSpec
from mlops_gates.stats.drift import chi2_p, js, ks, psi
from mlops_gates.stats.integrity import Drift, IntegrityStats


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


def _contract(facts: IntegrityStats, cfg: dict[str, Any], sev: str) -> list[Check]:
    """Each violation found, and each contract rule that held (so the record shows what was checked)."""
    n = facts.rows
    tests = [
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
        for v in facts.violations
    ]
    for col, rule in cfg.get("contract", {}).items():
        if not any(v["column"] == col for v in facts.violations):
            tests.append(
                _fact("contract_violations", f"{col}: {', '.join(rule) or 'present'}", 0, n, "<=", 0, sev)
            )
    return tests


def _row_facts(facts: IntegrityStats, cfg: dict[str, Any], sev: str) -> list[Check]:
    """Shares of rows: missing values per feature, duplicates, conflicting labels, rows seen in training."""
    n = facts.rows
    tests = []
    if "max_missing_rate" in cfg:
        for col in facts.features:
            tests.append(
                _fact("missing_rate", col, facts.missing[col] / n, n, "<=", cfg["max_missing_rate"], sev)
            )
    rows = (
        (
            "duplicate_rate",
            "rows",
            facts.duplicates,
            "max_duplicate_rate",
            f"{facts.duplicates} duplicate rows",
        ),
        (
            "conflicting_label_rate",
            "rows",
            facts.conflicts,
            "max_conflicting_label_rate",
            f"{facts.conflicts} rows share features with a row of another label",
        ),
        (
            "leakage_rate",
            "rows also in training data",
            facts.leakage,
            "max_leakage_rate",
            f"{facts.leakage} evaluation rows appear in the training data",
        ),
    )
    for metric, scope, count, key, note in rows:
        if key not in cfg or (count is None and key == "max_leakage_rate"):
            continue  # leakage is counted only when there is training data
        if count is None:
            raise ValueError(f"{metric} was not counted")  # the gate is ERROR, never a silent pass
        tests.append(_fact(metric, scope, count / n, n, "<=", cfg[key], sev, note=note))
    return tests


def _class_rates(ctx: Context, cfg: dict[str, Any], sev: str) -> list[Check]:
    if "min_class_rate" not in cfg or ctx.stats.task == "regression":
        return []
    n = ctx.stats.integrity.rows
    t = ctx.stats.cells.groupby(("y",))
    counts = np.bincount(t.keys["y"], weights=t.n, minlength=len(ctx.stats.classes))
    return [
        _fact("class_rate", f"label={cls}", counts[k] / n, n, ">=", cfg["min_class_rate"], sev)
        for k, cls in enumerate(ctx.stats.classes)
    ]


def evaluate(spec: GateSpec, ctx: Context) -> GateResult:
    cfg, sev = spec.config, spec.severity
    facts = ctx.stats.integrity
    assert facts is not None
    tests = _contract(facts, cfg, sev) + _row_facts(facts, cfg, sev) + _class_rates(ctx, cfg, sev)
    for name, d in facts.drift.items():
        tests += _drift_tests(name, d, cfg.get("drift", {}), sev)
    if "prediction_drift" in cfg:
        tests += _prediction_drift(ctx, cfg["prediction_drift"], sev)
    return summarise(spec.name, spec.type, judge(tests, ctx.policy), ctx.policy)
