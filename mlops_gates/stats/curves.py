"""ROC and calibration points from the score histograms, for the HTML report to draw."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlops_gates.stats.collect import EvalStats


def curves(stats: EvalStats) -> dict[str, Any]:
    """ROC and calibration points per model, from the score histograms (binary tasks)."""
    if stats.task != "binary":
        return {}
    out: dict[str, Any] = {}
    nb = len(stats.edges) + 1
    lower = np.r_[0.0, stats.edges]
    decile = np.minimum((lower * 10 + 1e-9).astype(int), 9)
    for side, name in (("c", "candidate"), ("b", "baseline")):
        if not stats.has_score[side]:
            continue
        t = stats.cells.groupby(("y", f"{side}bin"))
        b, y, w = t.keys[f"{side}bin"], t.keys["y"], t.sums["w"]
        pos = np.bincount(b[y == 1], w[y == 1], nb)[::-1].cumsum()
        neg = np.bincount(b[y == 0], w[y == 0], nb)[::-1].cumsum()
        roc = [(0.0, 0.0)] + [
            (float(f), float(p))
            for f, p in zip(neg / max(neg[-1], 1e-12), pos / max(pos[-1], 1e-12), strict=True)
        ]
        cb = stats.cells.groupby((f"{side}bin",))
        dec = decile[cb.keys[f"{side}bin"]]
        conf = np.bincount(dec, cb.sums[f"conf_{side}"], 10)
        hit = np.bincount(dec, cb.sums[f"hit_{side}"], 10)
        tot = np.bincount(dec, cb.sums["w"], 10)
        cal = [(float(conf[d] / tot[d]), float(hit[d] / tot[d])) for d in range(10) if tot[d] > 0]
        out[name] = {"roc": roc, "calibration": cal}
    return out
