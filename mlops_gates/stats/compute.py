"""Metrics as functions of weighted cell sums, vectorised over bootstrap replicates.

Every function takes replicate multipliers W (R x cells; a row of ones is the point estimate) and returns
arrays with a leading replicate axis. Undefined values (0/0) are NaN, never 0.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlops_gates.stats.collect import EvalStats
from mlops_gates.stats.table import CellTable, replicate_weights


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


BLOCK = 4_000_000  # replicate x cell multipliers held in memory at once (32 MB)
KEEP = 16_000_000  # a resample this small is drawn once and reused by every gate


@dataclass
class Resampled:
    """One block of replicate multipliers W (replicates x cells) over a table."""

    table: CellTable
    W: np.ndarray

    def sum(self, values: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """Sum of `values` over cells, per replicate, and per group column of `groups` (cells x m) if given."""
        if groups is None:
            return self.W @ values
        return self.W @ (values[:, None] * groups)


@dataclass
class Bootstrap:
    """A table and its seeded bootstrap, drawn in blocks so memory stays bounded whatever the table's size.

    Row 0 of the first block is all ones: the point estimate travels with the replicates.
    """

    table: CellTable
    replicates: int
    seed: int
    unit: str = "row"  # "bucket": each cell is one unit (regression's row buckets)
    strata: np.ndarray | None = None  # per cell, the design stratum resampled within (None: one)
    _kept: list[np.ndarray] = field(default_factory=list)

    def _draw(self, count: int, block: int) -> np.ndarray:
        t = self.table
        if self.unit == "bucket":
            t = CellTable(t.keys, t.sums, np.ones(len(t), dtype=np.int64))
        strata = self.strata if self.strata is not None else np.zeros(len(t), dtype=np.int64)
        return replicate_weights(t, strata, count, (self.seed, block))

    def blocks(self) -> Iterator[Resampled]:
        if self._kept:
            yield from (Resampled(self.table, W) for W in self._kept)
            return
        cells = max(len(self.table), 1)
        per = max(1, BLOCK // cells)
        keep = self.replicates * cells <= KEEP
        for i, r0 in enumerate(range(0, self.replicates, per)):
            W = self._draw(min(per, self.replicates - r0), i)
            if i == 0:
                W = np.vstack([np.ones((1, len(self.table))), W])
            if keep:
                self._kept.append(W)
            yield Resampled(self.table, W)

    def apply(self, fn: Callable[[Resampled], Any]) -> Any:
        """fn over every block, its results (an array or a dict of arrays) joined along the replicate axis."""
        parts = [fn(b) for b in self.blocks()]
        if isinstance(parts[0], dict):
            return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return np.concatenate(parts)


def resample(
    stats: EvalStats,
    names: tuple[str, ...],
    replicates: int,
    seed: int,
    unit: str = "row",
    groups: bool = True,
    design: tuple[int, ...] = (),
) -> Bootstrap:
    """The table on `names` (and the groups, unless `groups` is False and no design needs them) and its row
    bootstrap. Rows are resampled over the whole set, as a simple random sample is drawn; resampling within
    groups would shrink the variance of every overall metric (500 small strata took a 95% interval to 79%
    coverage). Only a sample drawn stratified (`design`: indices of group columns) is resampled within
    those columns' combinations."""
    if groups or design:
        t = stats.cells.groupby(("stratum", *names))
    else:
        t = stats.cells.groupby(names)
        t.keys["stratum"] = np.zeros(len(t), dtype=np.int64)
    strata = None
    if design:
        codes = {s: tuple(stats.strata[s][i] for i in design) for s in range(len(stats.strata))}
        number = {v: j for j, v in enumerate(sorted(set(codes.values()), key=lambda v: tuple(map(str, v))))}
        strata = np.array([number[codes[s]] for s in t.keys["stratum"]], dtype=np.int64)
    return Bootstrap(t, replicates, seed, unit, strata)


def group_matrix(
    stats: EvalStats, strata: np.ndarray, groupings: list[tuple[int, ...]]
) -> tuple[np.ndarray, list[tuple[tuple[int, ...], tuple]]]:
    """Indicator (cells x groups) for every group of every grouping (a tuple of group-column indices)."""
    cols = []
    labels = []
    for g in groupings:
        values = sorted(
            {tuple(stats.strata[s][i] for i in g) for s in range(len(stats.strata))},
            key=lambda v: tuple(map(str, v)),
        )
        for v in values:
            members = np.array([tuple(stats.strata[s][i] for i in g) == v for s in range(len(stats.strata))])
            cols.append(members[strata].astype(np.float64))
            labels.append((g, v))
    return (np.stack(cols, axis=1) if cols else np.zeros((len(strata), 0))), labels


# ------------------------------------------------------------------ classification counts
def confusion(r: Resampled, side: str, K: int, groups: np.ndarray | None = None) -> np.ndarray:
    """Weighted confusion matrices [..., true, predicted]: (1+R) x K x K, or (1+R) x m x K x K per group."""
    t = r.table
    idx = t.keys["y"] * K + t.keys[side]
    onehot = np.zeros((len(t), K * K))
    onehot[np.arange(len(t)), idx] = t.sums["w"]
    if groups is None:
        return (r.W @ onehot).reshape(-1, K, K)
    m = groups.shape[1]
    full = (groups[:, :, None] * onehot[:, None, :]).reshape(len(t), m * K * K)
    return (r.W @ full).reshape(-1, m, K, K)


def rates(C: np.ndarray) -> dict[str, np.ndarray]:
    """Group rates from confusion matrices [..., K, K]: all five for binary, accuracy for multiclass."""
    if C.shape[-1] > 2:
        return {"accuracy": _div(np.trace(C, axis1=-2, axis2=-1), C.sum(axis=(-1, -2)))}
    tn, fp, fn, tp = C[..., 0, 0], C[..., 0, 1], C[..., 1, 0], C[..., 1, 1]
    n = tn + fp + fn + tp
    return {
        "selection_rate": _div(tp + fp, n),
        "tpr": _div(tp, tp + fn),
        "fpr": _div(fp, fp + tn),
        "accuracy": _div(tp + tn, n),
        "precision": _div(tp, tp + fp),
    }


def count_metrics(C: np.ndarray) -> dict[str, np.ndarray]:
    """Overall classification metrics from confusion matrices (1+R) x K x K, as scikit-learn defines them."""
    K = C.shape[-1]
    n = C.sum(axis=(-1, -2))
    diag = np.diagonal(C, axis1=-2, axis2=-1)
    true_k = C.sum(axis=-1)
    pred_k = C.sum(axis=-2)
    recall_k = _div(diag, true_k)
    out = {"accuracy": _div(diag.sum(axis=-1), n)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN replicate: stays NaN
        out["balanced_accuracy"] = np.nanmean(recall_k, axis=-1)
    if K == 2:
        tp, fp, fn = C[..., 1, 1], C[..., 0, 1], C[..., 1, 0]
        out["precision"] = _div(tp, tp + fp)
        out["recall"] = _div(tp, tp + fn)
        out["f1"] = _div(2 * tp, 2 * tp + fp + fn)
    else:  # macro over classes seen in labels or predictions; a class never predicted has precision 0
        present = (true_k + pred_k) > 0
        cnt = present.sum(axis=-1)
        out["precision"] = _div(np.where(present, np.nan_to_num(_div(diag, pred_k)), 0).sum(axis=-1), cnt)
        out["recall"] = _div(np.where(present, np.nan_to_num(recall_k), 0).sum(axis=-1), cnt)
        out["f1"] = _div(
            np.where(present, np.nan_to_num(_div(2 * diag, true_k + pred_k)), 0).sum(axis=-1), cnt
        )
    return out


# ------------------------------------------------------------------ scores
def score_metrics(
    r: Resampled, side: str, edges: np.ndarray, classes: int, groups: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """log loss, Brier, ECE (10 equal-width bins; multiclass: top label) and ROC AUC from the score table."""
    t = r.table
    w = t.sums["w"]

    def s(v: np.ndarray) -> np.ndarray:
        return r.sum(v, groups)

    total = s(w)
    out = {"log_loss": _div(s(t.sums[f"ll_{side}"]), total), "brier": _div(s(t.sums[f"br_{side}"]), total)}
    bins = t.keys[f"{side}bin"]
    lower = np.r_[0.0, edges][bins]
    decile = np.minimum((lower * 10 + 1e-9).astype(int), 9)
    gap = np.zeros_like(total)
    for d in range(10):
        inb = (decile == d).astype(np.float64)
        gap = gap + np.abs(s(t.sums[f"conf_{side}"] * inb) - s(t.sums[f"hit_{side}"] * inb))
    out["ece"] = _div(gap, total)
    nbins = len(edges) + 1
    if classes == 2:
        out["roc_auc"] = _auc(r, bins, t.keys["y"] == 1, nbins, groups)
    elif f"p0_{side}" in t.keys:  # multiclass: one-vs-rest AUC per class, macro average (as scikit-learn)
        per_class = [_auc(r, t.keys[f"p{k}_{side}"], t.keys["y"] == k, nbins, groups) for k in range(classes)]
        out["roc_auc"] = np.mean(per_class, axis=0)
    return out


def _auc(
    r: Resampled, bins: np.ndarray, positive: np.ndarray, nbins: int, groups: np.ndarray | None
) -> np.ndarray:
    """AUC from binned scores: pairs in one bin count as ties (half), as for tied scores."""
    from scipy import sparse

    t = r.table
    y = positive.astype(np.int64)
    w = t.sums["w"]
    parts = [groups[:, j] for j in range(groups.shape[1])] if groups is not None else [np.ones(len(t))]
    res = []
    for g in parts:
        H = sparse.csr_matrix((w * g, (np.arange(len(t)), bins + nbins * y)), shape=(len(t), 2 * nbins))
        hist = np.asarray((H.T @ r.W.T).T)
        neg, pos = hist[:, :nbins], hist[:, nbins:]
        below = np.cumsum(neg, axis=1) - neg
        res.append(_div((pos * (below + 0.5 * neg)).sum(axis=1), pos.sum(axis=1) * neg.sum(axis=1)))
    return np.stack(res, axis=1) if groups is not None else res[0]


def delong(stats: EvalStats, sides: tuple[str, ...]) -> tuple[list[float], float]:
    """The AUCs of `sides` ('c', 'b') and the standard error of the first (one side) or of first - second
    (two: paired, on the same rows), by DeLong's method (1988) on the bin table: ties within a bin count half,
    as in `_auc`. Unweighted binary tasks only.

    Why not the bootstrap: resampling the candidate x baseline x label table (tens of thousands of cells at a
    million rows) costs more than the rest of a run; DeLong's variance is exact arithmetic on the same table.
    """
    t = stats.cells.groupby(("y", *(f"{s}bin" for s in sides)))
    nb = len(stats.edges) + 1
    pos = t.keys["y"] == 1
    k = t.n.astype(np.float64)
    m, n = k[pos].sum(), k[~pos].sum()
    if not (m and n):
        return [float("nan")] * len(sides), float("nan")
    # placement values: a positive's share of negatives below it, a negative's share of positives above it
    place: list[tuple[np.ndarray, np.ndarray]] = []
    for side in sides:
        b = t.keys[f"{side}bin"]
        P = np.bincount(b[pos], weights=k[pos], minlength=nb)
        N = np.bincount(b[~pos], weights=k[~pos], minlength=nb)
        v10 = (np.cumsum(N) - 0.5 * N) / n
        v01 = (m - np.cumsum(P) + 0.5 * P) / m
        place.append((v10[b[pos]], v01[b[~pos]]))
    auc = [float((k[pos] * p[0]).sum() / m) for p in place]
    if m < 2 or n < 2:
        return auc, float("nan")
    var = 0.0
    for j, (rows, size) in enumerate(((pos, m), (~pos, n))):
        # per row, the placement (or the two models' difference: its variance is S_cc + S_bb - 2 S_cb)
        d = place[0][j] - place[1][j] if len(sides) == 2 else place[0][j]
        mean = (k[rows] * d).sum() / size
        var += (k[rows] * (d - mean) ** 2).sum() / (size - 1) / size
    return auc, float(np.sqrt(var))


def auc_binning_bound(stats: EvalStats, side: str) -> float:
    """Largest possible gap between the binned AUC and the exact one: half the share of pairs sharing a bin."""
    t = stats.cells.groupby(("y", f"{side}bin"))
    nb = len(stats.edges) + 1
    pos = np.bincount(
        t.keys[f"{side}bin"][t.keys["y"] == 1], weights=t.sums["w"][t.keys["y"] == 1], minlength=nb
    )
    neg = np.bincount(
        t.keys[f"{side}bin"][t.keys["y"] == 0], weights=t.sums["w"][t.keys["y"] == 0], minlength=nb
    )
    denom = pos.sum() * neg.sum()
    return float(0.5 * (pos * neg).sum() / denom) if denom else float("nan")


# ------------------------------------------------------------------ regression
def regression_metrics(r: Resampled, side: str, groups: np.ndarray | None = None) -> dict[str, np.ndarray]:
    t = r.table

    def s(v: np.ndarray) -> np.ndarray:
        return r.sum(v, groups)

    w, y, y2 = s(t.sums["w"]), s(t.sums["y"]), s(t.sums["y2"])
    sse = s(t.sums[f"se_{side}"])
    sst = y2 - _div(y * y, w)
    return {"mae": _div(s(t.sums[f"ae_{side}"]), w), "rmse": np.sqrt(_div(sse, w)), "r2": 1 - _div(sse, sst)}
