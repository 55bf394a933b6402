"""Accuracy gate: each threshold on the candidate's metric, overall and (optionally) within every slice."""

from __future__ import annotations

import numpy as np

from mlops_gates.gates.base import Context, GateResult, insufficient_status
from mlops_gates.gates.common import class_sizes, delong_auc, metric_values, row_shares, scope_label, with_se
from mlops_gates.gates.judge import Check, judge, summarise
from mlops_gates.policy import GateSpec


def evaluate(spec: GateSpec, ctx: Context) -> GateResult:
    names = list(dict.fromkeys(t.metric for t in spec.thresholds))
    auc = delong_auc(ctx, ("c",)) if "roc_auc" in names else None  # overall AUC: DeLong's, no resample
    values, _, n = metric_values(ctx, "c", [m for m in names if not (auc and m == "roc_auc")])
    if auc:
        values["roc_auc"] = np.array([auc[0][0]])
    tests = []
    for t in spec.thresholds:
        share = row_shares(ctx, t.metric)
        check = Check(
            t.metric,
            "overall",
            values[t.metric],
            int(n),
            t.op,
            t.value,
            t.severity,
            counts=share[0] if share else None,
        )
        if auc and t.metric == "roc_auc":
            check = with_se(check, auc[1], ctx.policy, class_sizes(ctx))
        tests.append(check)
    if spec.config.get("slices"):
        cols = ctx.stats.group_columns
        groupings: list[tuple[int, ...]] = [(cols.index(c),) for c in ctx.policy.columns.slices]
        per, labels, ns = metric_values(ctx, "c", names, groupings)
        min_n = ctx.policy.settings.min_group_size
        shares = {t.metric: row_shares(ctx, t.metric, groupings) for t in spec.thresholds}
        for j, (g, v) in enumerate(labels):
            small = int(ns[j]) < min_n
            for t in spec.thresholds:
                per_group = shares[t.metric]
                tests.append(
                    Check(
                        t.metric,
                        scope_label(cols, g, v),
                        per[t.metric][:, j],
                        int(ns[j]),
                        t.op,
                        t.value,
                        t.severity,
                        note=f"insufficient evidence: {int(ns[j])} rows < min_group_size {min_n}"
                        if small
                        else None,
                        forced=insufficient_status(ctx.policy) if small else None,
                        counts=per_group[j] if per_group else None,
                    )
                )
    return summarise(spec.name, spec.type, judge(tests, ctx.policy), ctx.policy)
