"""Decision-quality benchmark: how often does a gate promote a model that is truly at the margin (it should
not, beyond the chance it allows), and how often does it hold a model that is truly better?

Simulates candidate/baseline pairs with a known truth, builds the gate's statistics from the simulated rows,
and runs the real gate code, with interval decisions and with point-estimate decisions (as TFMA and MLflow
decide). Usage: python bench/decision_quality.py [--runs 1000] [--replicates 1000] [--out bench/RESULTS-decision-quality.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import yaml

from mlops_gates import policy as P
from mlops_gates.gates import registry
from mlops_gates.gates.base import Context, Status
from mlops_gates.stats.collect import EvalStats, score_edges
from mlops_gates.stats.table import CellTable

SIZES = (500, 2_000, 10_000, 100_000)
GATES = {
    "accuracy >= 0.80": {"type": "accuracy", "metrics": [{"metric": "accuracy", "op": ">=", "value": 0.80}]},
    "accuracy drop <= 0.01 (paired)": {
        "type": "regression",
        "metrics": [{"metric": "accuracy", "margin": {"absolute": 0.01}}],
    },
    "demographic parity difference <= 0.10": {
        "type": "fairness",
        "metrics": [{"metric": "demographic_parity_difference", "op": "<=", "value": 0.10}],
    },
    "negative flip rate <= 0.05": {"type": "regression", "negative_flips": {"max_rate": 0.05}},
    "AUC drop <= 0.01 (paired)": {
        "type": "regression",
        "metrics": [{"metric": "roc_auc", "margin": {"absolute": 0.01}}],
    },
}
# (at the margin: must not be promoted, truly better: should be promoted)
TRUTHS = {
    "accuracy >= 0.80": (dict(acc_c=0.80), dict(acc_c=0.83)),
    "accuracy drop <= 0.01 (paired)": (dict(acc_c=0.79, acc_b=0.80), dict(acc_c=0.81, acc_b=0.80)),
    "demographic parity difference <= 0.10": (dict(gap=0.10), dict(gap=0.04)),
    "negative flip rate <= 0.05": (
        dict(flip=0.05, acc_c=0.85, acc_b=0.85),
        dict(flip=0.03, acc_c=0.85, acc_b=0.85),
    ),
    "AUC drop <= 0.01 (paired)": (dict(auc_gap=-0.01), dict(auc_gap=0.01)),
}
EDGES = score_edges(200)
LOGIT_EDGES = np.log(EDGES / (1 - EDGES))
# the baseline's scores: logits N(1.2 y, 1) (AUC about 0.80); the two models' noise correlates by 0.6
MU_B, RHO = 1.2, 0.6


def binned_auc(mu: float) -> float:
    """The population AUC of logit scores N(mu y, 1) after the gate's binning (ties in a bin count half):
    the truth the simulated gates are judged against."""
    from scipy.special import ndtr

    e = np.r_[-np.inf, LOGIT_EDGES, np.inf]
    pos, neg = np.diff(ndtr(e - mu)), np.diff(ndtr(e))
    return float((pos * (np.cumsum(neg) - 0.5 * neg)).sum())


@functools.cache
def mu_for(gap: float) -> float:
    """The candidate's separation whose binned AUC differs from the baseline's by exactly `gap`."""
    from scipy.optimize import brentq

    return float(brentq(lambda mu: binned_auc(mu) - binned_auc(MU_B) - gap, 0.1, 5.0, xtol=1e-12))


def simulate(
    n: int,
    rng: np.random.Generator,
    acc_c: float = 0.85,
    acc_b: float = 0.85,
    gap: float = 0.0,
    flip: float | None = None,
    auc_gap: float | None = None,
):
    """Rows with two groups; labels, candidate and baseline predictions (and score bins, for AUC) with the
    asked-for truth."""
    g = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.5).astype(np.int64)
    if auc_gap is not None:
        noise_b = rng.normal(size=n)
        noise_c = RHO * noise_b + np.sqrt(1 - RHO**2) * rng.normal(size=n)
        s_c, s_b = mu_for(auc_gap) * y + noise_c, MU_B * y + noise_b
        bins = [np.searchsorted(LOGIT_EDGES, s, side="right") for s in (s_c, s_b)]
        return g, y, (s_c > 0).astype(np.int64), (s_b > 0).astype(np.int64), *bins
    # selection rates 0.5 +/- gap/2 by group give a demographic parity difference of `gap` (accuracy aside)
    if gap:
        sel = np.where(g == 0, 0.5 - gap / 2, 0.5 + gap / 2)
        c = (rng.random(n) < sel).astype(np.int64)
        return g, y, c, c.copy()
    b_right = rng.random(n) < acc_b
    if flip is None:  # independent errors, with the asked-for accuracies
        c_right = rng.random(n) < acc_c
    else:  # baseline right & candidate wrong with probability `flip`, overall accuracy acc_c
        u = rng.random(n)
        lost = b_right & (u < flip / acc_b)
        won_p = (acc_c - acc_b + flip) / (1 - acc_b)
        won = ~b_right & (u < won_p)
        c_right = (b_right & ~lost) | won
    c = np.where(c_right, y, 1 - y)
    b = np.where(b_right, y, 1 - y)
    return g, y, c, b


def make_policy(gate: dict, mode: str, replicates: int, folder: Path) -> P.Policy:
    doc = {
        "version": 1,
        "task": "binary",
        "positive_label": 1,
        "data": {"eval": {"path": "unused.parquet"}},
        "columns": {
            "label": "y",
            "candidate": {"prediction": "c", "score": "cs"},
            "baseline": {"prediction": "b", "score": "bs"},
            "sensitive": ["g"],
        },
        "settings": {
            "bootstrap": {"replicates": replicates, "seed": 0},
            "decision_mode": mode,
            "min_group_size": 1,
        },
        "gates": [gate],
    }
    path = folder / f"{mode}.yml"
    path.write_text(yaml.safe_dump(doc))
    return P.load(path)


def gate_once(pol: P.Policy, g, y, c, b, cbin=None, bbin=None, seed: int = 0) -> Status:
    n = len(y)
    scored = cbin is not None
    nb = len(EDGES) + 1
    cbin, bbin = (cbin, bbin) if scored else (np.zeros(n, np.int64), np.zeros(n, np.int64))
    # the table the one pass would build: counts per (group, label, candidate, baseline, score bins)
    code, counts = np.unique(((((g * 2 + y) * 2 + c) * 2 + b) * nb + cbin) * nb + bbin, return_counts=True)
    keys = {"bbin": code % nb, "cbin": code // nb % nb}
    idx = code // (nb * nb)
    keys |= {"stratum": idx >> 3, "y": (idx >> 2) & 1, "c": (idx >> 1) & 1, "b": idx & 1}
    cells = CellTable(keys, {"w": counts.astype(np.float64)}, counts)
    stats = EvalStats(
        "binary",
        [0, 1],
        ("g",),
        [(0,), (1,)],
        cells,
        EDGES,
        n,
        True,
        {"c": scored, "b": scored},
        "sha256:" + "0" * 64,
    )
    pol = dataclasses.replace(pol, settings=dataclasses.replace(pol.settings, seed=seed))
    return registry.run(pol.gates[0], Context(pol, stats)).status


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=Path("bench/RESULTS-decision-quality.md"))
    ap.add_argument("--only", default="", help="run only the gates whose name contains this")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp())
    rows = []
    t0 = time.time()
    for name, gate in GATES.items():
        if args.only not in name:
            continue
        pols = {mode: make_policy(gate, mode, args.replicates, folder) for mode in ("interval", "point")}
        margin, better = TRUTHS[name]
        for n in SIZES:
            rng = np.random.default_rng(zlib.crc32(f"{name} {n}".encode()))  # stable across processes
            counts = {("margin", m): 0 for m in pols} | {("better", m): 0 for m in pols}
            for i in range(args.runs):
                for truth, kw in (("margin", margin), ("better", better)):
                    sim = simulate(n, rng, **kw)
                    for mode, pol in pols.items():
                        st = gate_once(pol, *sim, seed=i)
                        promoted = st in (Status.PASS, Status.WARN)
                        counts[(truth, mode)] += promoted if truth == "margin" else not promoted
            r = args.runs
            rows.append(
                (
                    name,
                    n,
                    counts[("margin", "interval")] / r,
                    counts[("margin", "point")] / r,
                    counts[("better", "interval")] / r,
                    counts[("better", "point")] / r,
                )
            )
            print(
                f"{name:40s} n={n:>7,}  promoted at the margin: interval {rows[-1][2]:.3f}, point {rows[-1][3]:.3f}; "
                f"held though better: interval {rows[-1][4]:.3f}, point {rows[-1][5]:.3f}",
                flush=True,
            )
    worst = max(r[2] for r in rows)
    lines = [
        "# Decision quality: interval decisions against point-estimate decisions",
        "",
        f"{args.runs:,} simulated gates per cell, {args.replicates:,} bootstrap replicates, 95% confidence "
        f"(one-sided 2.5% per check). Ran in {time.time() - t0:.0f} s on this machine (2 cores). Command: "
        "`python bench/decision_quality.py`.",
        "",
        "| gate | rows | promoted at the margin (interval) | (point) | held though truly better (interval) | (point) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {a} | {n:,} | {b:.1%} | {c:.1%} | {d:.1%} | {e:.1%} |" for a, n, b, c, d, e in rows]
    lines += [
        "",
        "At the margin a point-estimate gate promotes about half the time, whatever the sample size; an interval gate",
        "promotes in about 2.5% (the price of a gate at all is that some truly better models are held when the",
        "sample is too small to show it).",
        "",
        "The promise (the scale issue): an interval gate promotes a model that is truly at the margin in at most",
        f"1 − confidence = 5% of runs. {'Every cell keeps it' if worst <= 0.05 else 'NOT KEPT in every cell'}: the",
        f"largest is {worst:.1%} ({args.runs:,} runs give a Monte-Carlo standard error of about "
        f"{np.sqrt(0.025 * 0.975 / args.runs):.1%} at 2.5%).",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
