"""Regression gate: the candidate against the baseline on the same rows (paired), as non-inferiority tests.

Sign convention: a margin is the largest allowed worsening, never negative. For a metric where higher is
better the difference candidate - baseline must stay >= -margin; where lower is better, <= +margin. A
relative margin is a fraction of the baseline's (point) value.
"""

from __future__ import annotations

import numpy as np

from mlops_gates.gates.base import ACTION, Context, GateResult, insufficient_status
from mlops_gates.gates.common import delong_auc, metric_values, row_shares, scope_label, with_se
from mlops_gates.gates.groups import (
    fairness_values,
    group_counts,
    grouping_name,
    groupings_for,
    rate_family,
    shortfall,
)
from mlops_gates.gates.judge import Check, judge, summarise
from mlops_gates.policy import GateSpec, Margin
from mlops_gates.policy import metrics as M
from mlops_gates.stats.compute import group_matrix


def mcnemar_p(ctx: Context) -> tuple[float, int, int]:
    """Exact McNemar test: two-sided binomial test on the rows only one of the two models gets right."""
    from scipy.special import bdtr

    t = ctx.stats.cells.groupby(("y", "c", "b"))
    y, c, b = t.keys["y"], t.keys["c"], t.keys["b"]
    lost = int(t.n[(b == y) & (c != y)].sum())
    won = int(t.n[(b != y) & (c == y)].sum())
    # at p = 1/2 the two tails are mirror images: twice the smaller one
    p = min(1.0, 2 * float(bdtr(min(lost, won), lost + won, 0.5))) if lost + won else 1.0
    return float(p), lost, won


def _flips(ctx: Context, spec: GateSpec) -> list[Check]:
    cfg = spec.config["negative_flips"]
    r = ctx.resampled(("y", "c", "b"))
    t = r.table
    flip = t.sums["w"] * ((t.keys["b"] == t.keys["y"]) & (t.keys["c"] != t.keys["y"]))
    share = row_shares(ctx, "negative_flip_rate")
    sev = cfg.get("severity", spec.severity)
    out = [
        Check(
            "negative_flip_rate",
            "overall",
            r.apply(lambda b: b.sum(flip) / b.sum(t.sums["w"])),
            int(t.n.sum()),
            "<=",
            cfg["max_rate"],
            sev,
            counts=share[0] if share else None,
        )
    ]
    if cfg.get("per_group"):
        cols = ctx.stats.group_columns
        G, labels = group_matrix(ctx.stats, t.keys["stratum"], groupings_for(spec, ctx))
        with np.errstate(invalid="ignore", divide="ignore"):
            per = r.apply(lambda b: b.sum(flip, G) / b.sum(t.sums["w"], G))
        ns = t.n @ G
        shares = row_shares(ctx, "negative_flip_rate", groupings_for(spec, ctx))
        min_n = ctx.policy.settings.min_group_size
        for j, (g, v) in enumerate(labels):
            small = ns[j] < min_n
            out.append(
                Check(
                    "negative_flip_rate",
                    scope_label(cols, g, v),
                    per[:, j],
                    int(ns[j]),
                    "<=",
                    cfg["max_rate"],
                    sev,
                    note=f"insufficient evidence: {int(ns[j])} rows < min_group_size {min_n}"
                    if small
                    else None,
                    forced=insufficient_status(ctx.policy) if small else None,
                    counts=None if shares is None else shares[j],
                )
            )
    return out


def evaluate(spec: GateSpec, ctx: Context) -> GateResult:
    policy, stats = ctx.policy, ctx.stats
    if not stats.has_baseline:
        action = policy.on.missing_baseline
        status = ACTION[action]
        return GateResult(
            spec.name,
            spec.type,
            status,
            f"no baseline predictions to compare with (on.missing_baseline: {action})",
        )
    tests: list[Check] = []
    details: dict = {}
    overall = [m for m in spec.margins if M.ALL[m.metric].kind == "overall"]
    fair = [m for m in spec.margins if M.ALL[m.metric].kind == "fairness"]
    if overall:
        auc = delong_auc(ctx, ("c", "b")) if any(m.metric == "roc_auc" for m in overall) else None
        names = list(dict.fromkeys(m.metric for m in overall if not (auc and m.metric == "roc_auc")))
        if names:
            cand, _, n = metric_values(ctx, "c", names, paired=True)
            base, _, _ = metric_values(ctx, "b", names, paired=True)
        for m in overall:
            if auc and m.metric == "roc_auc":
                (auc_c, auc_b), se = auc
                t = _paired(m, np.array([auc_c]), np.array([auc_b]), int(ctx.stats.cells.n.sum()))
                tests.append(with_se(t, se, policy))
            else:
                tests.append(_paired(m, cand[m.metric], base[m.metric], int(n)))
    if fair:
        details["groups_considered"] = []
        for grouping in groupings_for(spec, ctx):
            labels, counts = group_counts(ctx, grouping)
            for m in fair:
                keep, small = _sized(ctx, m, grouping, labels, counts, details["groups_considered"])
                tests += small
                if keep.sum() < 2:
                    tests.append(
                        Check(
                            m.metric,
                            grouping_name(ctx, grouping),
                            np.array([np.nan]),
                            int(counts["rows"][keep].sum()),
                            None,
                            None,
                            m.severity,
                            note="fewer than two groups with enough evidence",
                            forced=insufficient_status(policy),
                        )
                    )
                    continue
                c = fairness_values(ctx, "c", grouping, m.metric, keep)[:1]
                b = fairness_values(ctx, "b", grouping, m.metric, keep)[:1]
                check = _paired(m, c, b, int(counts["rows"][keep].sum()), grouping_name(ctx, grouping))
                # "must not widen": bounds on the candidate's gap minus the baseline's, from simultaneous
                # intervals of both models' group rates (paired: the same replicates)
                check.simultaneous = rate_family(ctx, ("c", "b"), grouping, m.metric, keep, counts)
                check.note = "; ".join(
                    x for x in (check.note, "simultaneous intervals of the group rates (max-t)") if x
                )
                tests.append(check)
    if "negative_flips" in spec.config:
        tests += _flips(ctx, spec)
    if stats.task != "regression":
        p, lost, won = mcnemar_p(ctx)
        details["mcnemar"] = {
            "p_value": p,
            "baseline_right_candidate_wrong": lost,
            "baseline_wrong_candidate_right": won,
        }
    return summarise(spec.name, spec.type, judge(tests, policy), policy, details)


def _sized(
    ctx: Context, m: Margin, grouping: tuple[int, ...], labels: list, counts: dict, fates: list
) -> tuple[np.ndarray, list[Check]]:
    """Which groups have the evidence the metric's rates need (rows, and positives or negatives behind a
    conditional rate), as the fairness gate decides; a group without is a check of its own, handled by
    on.insufficient_group, never dropped silently. Every group's fate goes into the record."""
    rates_used, _ = M.split_fairness(m.metric)
    keep = np.ones(len(labels), dtype=bool)
    small = []
    for j, (g, v) in enumerate(labels):
        short = shortfall(ctx, rates_used, counts, j)
        scope = scope_label(ctx.stats.group_columns, g, v)
        fates.append(
            {
                "metric": m.metric,
                "grouping": grouping_name(ctx, grouping),
                "group": scope,
                "n": int(counts["rows"][j]),
                "fate": "judged" if not short else "insufficient evidence: " + "; ".join(short),
            }
        )
        if short:
            keep[j] = False
            note = "insufficient evidence: " + "; ".join(short)
            small.append(
                Check(
                    f"{m.metric} (candidate - baseline)",
                    scope,
                    np.array([np.nan]),
                    int(counts["rows"][j]),
                    None,
                    None,
                    m.severity,
                    note=note,
                    forced=insufficient_status(ctx.policy),
                )
            )
    return keep, small


def _paired(m: Margin, cand: np.ndarray, base: np.ndarray, n: int, scope: str = "overall") -> Check:
    """Judge the paired difference candidate - baseline against the margin, on the side the metric improves."""
    allowed = m.value if m.kind == "absolute" else m.value * abs(float(base[0]))
    up = M.ALL[m.metric].higher_is_better
    note = None if m.kind == "absolute" else f"relative margin {m.value:g} x baseline {float(base[0]):.4g}"
    return Check(
        f"{m.metric} (candidate - baseline)",
        scope,
        cand - base,
        n,
        ">=" if up else "<=",
        -allowed if up else allowed,
        m.severity,
        baseline=float(base[0]),
        note=note,
    )
