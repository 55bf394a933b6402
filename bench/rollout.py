"""Rollout benchmark: a canary analysis looked at after every window. How often is a canary truly at the
margin promoted (it must not be, beyond alpha, over all looks together), how often is a good canary promoted and
a broken one rolled back, and after how many windows?

Three rules on the same simulated traffic (accuracy on labelled rows, canary against stable, margin 0.02):
- ours: the confidence sequence `mlops-gates analyze` uses (stats/sequential.py), alpha 0.05;
- fixed horizon: a one-sided 5% z-test for non-inferiority, checked at every window (what a threshold on a
  p-value does when a controller asks every minute);
- threshold: the point estimate within the margin at three windows in a row (a web-metric successCondition
  with a count of successes, as canary controllers are commonly configured).
Usage: python bench/rollout.py [--runs 1000] [--out bench/RESULTS-rollout.md]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from mlops_gates.stats import sequential

ALPHA, MARGIN, HORIZON, LOOKS, P_STABLE = 0.05, 0.02, 20_000, 30, 0.85
TRAFFIC = (200, 1_000, 5_000)  # labelled rows per window, both arms
SHARES = (0.1, 0.5)
TRUTHS = {"at the margin (-0.02)": -MARGIN, "as good (0)": 0.0, "broken (-0.06)": -3 * MARGIN}


def ours(kc: int, nc: int, ks: int, ns: int) -> str | None:
    vc, vs = ((k + 1) / (n + 2) * (1 - (k + 1) / (n + 2)) for k, n in ((kc, nc), (ks, ns)))
    _, lo, hi = sequential.difference(kc / nc, vc, nc, ks / ns, vs, ns, ALPHA, HORIZON)
    return "PROMOTE" if lo > -MARGIN else "ROLLBACK" if hi < -MARGIN else None


def fixed_horizon(kc: int, nc: int, ks: int, ns: int) -> str | None:
    pc, ps = kc / nc, ks / ns
    se = max(math.sqrt(pc * (1 - pc) / nc + ps * (1 - ps) / ns), 1e-9)
    z = (pc - ps + MARGIN) / se
    return "PROMOTE" if z > 1.645 else "ROLLBACK" if z < -1.645 else None


def threshold() -> object:
    streak = {"n": 0}

    def rule(kc: int, nc: int, ks: int, ns: int) -> str | None:
        streak["n"] = streak["n"] + 1 if kc / nc - ks / ns >= -MARGIN else 0
        return "PROMOTE" if streak["n"] >= 3 else "ROLLBACK" if kc / nc - ks / ns < -2 * MARGIN else None

    return rule


def simulate(make_rule, delta: float, per_look: int, share: float, runs: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    promoted = rolled = 0
    windows: list[int] = []
    for _ in range(runs):
        rule = make_rule()
        kc = ks = nc = ns = 0
        for look in range(1, LOOKS + 1):
            a = rng.binomial(per_look, share)
            kc += rng.binomial(a, P_STABLE + delta)
            ks += rng.binomial(per_look - a, P_STABLE)
            nc, ns = nc + a, ns + per_look - a
            if min(nc, ns) < 200:
                continue
            verdict = rule(kc, nc, ks, ns)
            if verdict:
                promoted += verdict == "PROMOTE"
                rolled += verdict == "ROLLBACK"
                windows.append(look)
                break
    return {
        "promote": promoted / runs,
        "rollback": rolled / runs,
        "windows": float(np.mean(windows)) if windows else math.nan,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "RESULTS-rollout.md")
    args = ap.parse_args()
    rules = {
        "ours": lambda: ours,
        "fixed horizon, every window": lambda: fixed_horizon,
        "threshold x3": threshold,
    }
    started = time.perf_counter()
    lines = [
        "# Rollout benchmark: peeking after every window",
        "",
        f"`python bench/rollout.py --runs {args.runs}`: {args.runs} simulated rollouts per cell, {LOOKS} windows "
        f"each, stable accuracy {P_STABLE}, margin {MARGIN}, alpha {ALPHA}. A rollout ends at the first PROMOTE "
        "or ROLLBACK; *windows* is the mean window it ended at. The canary *at the margin* must not be promoted "
        "more often than alpha (5%) over all looks together.",
        "",
        "| canary | rows per window | canary share | rule | PROMOTE | ROLLBACK | windows |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for truth, delta in TRUTHS.items():
        for per_look in TRAFFIC:
            for share in SHARES:
                for name, make in rules.items():
                    r = simulate(make, delta, per_look, share, args.runs, seed=per_look + int(share * 10))
                    lines.append(
                        f"| {truth} | {per_look} | {share:.0%} | {name} | {r['promote']:.1%} | "
                        f"{r['rollback']:.1%} | {r['windows']:.1f} |"
                    )
    lines += ["", f"Took {time.perf_counter() - started:.0f} s."]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
