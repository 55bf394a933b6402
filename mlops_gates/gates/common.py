"""Model metrics for any gate: the right table, the shared resample, per group when asked."""

from __future__ import annotations

import numpy as np

from mlops_gates.gates.base import Context, insufficient_status
from mlops_gates.gates.judge import Check
from mlops_gates.policy import Policy
from mlops_gates.policy import metrics as M
from mlops_gates.stats.compute import (
    Resampled,
    confusion,
    count_metrics,
    delong,
    group_matrix,
    regression_metrics,
    score_metrics,
)

SCORE_METRICS = {"roc_auc", "log_loss", "brier", "ece"}


def metric_values(
    ctx: Context,
    side: str,
    names: list[str],
    groupings: list[tuple[int, ...]] | None = None,
    paired: bool = False,
) -> tuple[dict[str, np.ndarray], list, np.ndarray]:
    """Values of `names` for one model ('c' or 'b'): arrays (1+R,) overall, or (1+R, groups) per group.

    Returns (values, group labels, rows per group or overall). `paired`: candidate and baseline values come
    from the same replicates, for differences.
    """
    stats = ctx.stats
    out: dict[str, np.ndarray] = {}
    labels: list = []
    if stats.task == "regression":
        r = ctx.resampled(("bucket",), unit="bucket")
        G, labels = group_matrix(stats, r.table.keys["stratum"], groupings) if groupings else (None, [])
        vals = r.apply(lambda b: regression_metrics(b, side, G))
        n = r.table.n @ G if G is not None else np.array(r.table.n.sum())
        return {k: vals[k] for k in names if k in vals}, labels, n
    counts = [k for k in names if k not in SCORE_METRICS]
    scores = [k for k in names if k in SCORE_METRICS]
    n = np.array(0)
    if counts or not scores:
        r = ctx.resampled(("y", "c", "b"))
        G, labels = group_matrix(stats, r.table.keys["stratum"], groupings) if groupings else (None, [])
        C = r.apply(lambda b: confusion(b, side, len(stats.classes), G))
        vals = count_metrics(C)
        out.update({k: vals[k] for k in counts})
        n = r.table.n @ G if G is not None else np.array(r.table.n.sum())
    if scores:
        if not stats.has_score[side]:
            raise ValueError(
                f"{', '.join(scores)} need{'s' if len(scores) == 1 else ''} a score column for the {'candidate' if side == 'c' else 'baseline'}"
            )
        # paired comparisons resample the joint score table; one model alone needs only its own bins
        sides = ("c", "b") if paired else (side,)
        keys = ("y", *(f"{s}bin" for s in sides))
        if "roc_auc" in scores and stats.task == "multiclass":  # one-vs-rest needs every class's score bins
            keys += tuple(f"p{k}_{s}" for s in sides for k in range(len(stats.classes)))
        # a paired overall comparison resamples rows without strata: the groups would multiply the joint
        # table's cells (up to groups x labels x bins x bins, about as many as rows at a million rows)
        r = ctx.resampled(keys, groups=bool(groupings) or not paired)
        G, labels = group_matrix(stats, r.table.keys["stratum"], groupings) if groupings else (None, [])

        def both(b: Resampled) -> dict[str, np.ndarray]:
            return {
                f"{s}:{k}": v
                for s in sides
                for k, v in score_metrics(b, s, stats.edges, len(stats.classes), G).items()
            }

        joint = ctx.once(("scores", keys, paired, tuple(groupings or ())), lambda: r.apply(both))
        vals = {k[2:]: v for k, v in joint.items() if k.startswith(f"{side}:")}
        for k in scores:
            if k not in vals:
                raise ValueError(f"{k} is not available for a {stats.task} task")
            out[k] = vals[k]
        n = r.table.n @ G if G is not None else np.array(r.table.n.sum())
    return out, labels, n


def delong_auc(ctx: Context, sides: tuple[str, ...]) -> tuple[list[float], float] | None:
    """DeLong's AUCs and standard error (see `compute.delong`) where they apply: a binary task with unweighted
    rows and scores for `sides`; None where the bootstrap must do."""
    s = ctx.stats
    if s.task != "binary" or ctx.policy.columns.weight or not all(s.has_score[x] for x in sides):
        return None
    return ctx.once(("delong", sides), lambda: delong(s, sides))


def with_se(t: Check, se: float, policy: Policy, classes: tuple[int, int] | None = None) -> Check:
    """Judge `t` by its analytic standard error. An AUC's (`classes`: positives, negatives) never falls below
    Hanley and McNeil's at the value tested, and its interval stays in [0, 1] (a score interval); a paired
    difference whose variance is 0 (every pair ordered alike) is too little evidence, never a pass."""
    t.se = se
    t.note = "; ".join(x for x in (t.note, "DeLong's interval") if x)
    if classes is not None:
        m, n = classes
        t.se_floor, t.limits = (lambda theta: hanley_mcneil_se(theta, m, n)), (0.0, 1.0)
        t.note += " with Hanley-McNeil's floor"
    else:
        t.limits = (-1.0, 1.0)
    if np.isnan(t.values[0]):
        return t
    if np.isnan(se):
        t.forced, t.note = insufficient_status(policy), "fewer than two positives or negatives: no variance"
    elif se == 0 and classes is None:
        t.forced = insufficient_status(policy)
        t.note = "no variance (both models order every pair alike): too little evidence to judge"
    return t


def hanley_mcneil_se(theta: float, m: int, n: int) -> float:
    """The standard error of an AUC of `theta` from m positives and n negatives (Hanley and McNeil, 1982)."""
    q1, q2 = theta / (2 - theta), 2 * theta * theta / (1 + theta)
    var = (theta * (1 - theta) + (m - 1) * (q1 - theta * theta) + (n - 1) * (q2 - theta * theta)) / (m * n)
    return float(np.sqrt(max(var, 0.0)))


def class_sizes(ctx: Context) -> tuple[int, int]:
    """(positives, negatives): the rows behind an AUC."""
    t = ctx.stats.cells
    pos = t.keys["y"] == 1
    return int(t.n[pos].sum()), int(t.n[~pos].sum())


def row_shares(
    ctx: Context, metric: str, groupings: list[tuple[int, ...]] | None = None
) -> list[tuple[int, int]] | None:
    """(rows counted, rows) for a metric that is a plain share of rows (accuracy, negative flip rate), overall
    or per group of the groupings; None when rows carry weights or the metric is not such a share."""
    stats = ctx.stats
    if ctx.policy.columns.weight or stats.task == "regression":
        return None
    t = ctx.resampled(("y", "c", "b")).table  # the table the count metrics already use
    y, c, b = t.keys["y"], t.keys["c"], t.keys["b"]
    hit = {"accuracy": c == y, "negative_flip_rate": (b == y) & (c != y)}.get(metric)
    if hit is None:
        return None
    if not groupings:
        return [(int(t.n[hit].sum()), int(t.n.sum()))]
    G, _ = group_matrix(stats, t.keys["stratum"], groupings)
    hits, rows = (np.where(hit, t.n, 0) @ G).astype(int).tolist(), (t.n @ G).astype(int).tolist()
    return list(zip(hits, rows, strict=True))


def higher_is_better(metric: str) -> bool:
    return M.ALL[metric].higher_is_better


def scope_label(stats_group_columns: tuple[str, ...], grouping: tuple[int, ...], value: tuple) -> str:
    return ", ".join(
        f"{stats_group_columns[i]}={'(missing)' if v is None else v}"
        for i, v in zip(grouping, value, strict=True)
    )
