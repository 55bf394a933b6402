"""Always-valid inference for a rollout that is looked at again and again.

A fixed-horizon test checked at every look promotes a worse canary far more often than its level. These bounds
hold at every look at once: the chance that any of them ever misses the truth, however often and whenever one
looks, is at most alpha. They come from Robbins' normal mixture and Ville's inequality:

- Howard, Ramdas, McAuliffe, Sekhon (2021), "Time-uniform, nonparametric, nonasymptotic confidence sequences",
  Annals of Statistics 49(2): the two-sided normal-mixture boundary and its tuning for an intended time.
- Waudby-Smith, Arbour, Sinha, Kennedy, Ramdas (2024), "Time-uniform central limit theory and asymptotic
  confidence sequences", Annals of Statistics: the same boundary with the variance estimated from the data
  (asymptotic confidence sequences), which is what a difference of two arms' means needs.
- Johari, Koomen, Pekelis, Walsh (2022), "Always valid inference: continuous monitoring of A/B tests",
  Operations Research 70(3): the mixture sequential probability ratio test for two-arm comparisons.

Knows nothing of gates, policies or rollouts."""

from __future__ import annotations

import math


def tuned_rho2(horizon: float, alpha: float) -> float:
    """The mixture's precision, chosen so the boundary is tightest at `horizon` (Howard et al.)."""
    c = -2 * math.log(alpha)
    return (c + math.log(1 + c)) / horizon


def boundary(v: float, alpha: float, rho2: float) -> float:
    """How far a sum with variance process v may stray from its mean, at every v at once, with chance <= alpha
    of ever crossing: sqrt((v + 1/rho2) * (2 log(1/alpha) + log(1 + rho2 v)))."""
    return math.sqrt((v + 1 / rho2) * (2 * math.log(1 / alpha) + math.log1p(rho2 * v)))


def half_width(se: float, rows: int, alpha: float, horizon: float) -> float:
    """The confidence sequence's half-width for an estimate with standard error `se` from `rows` rows: the
    standard error times boundary(rows) / sqrt(rows), which is about 3 at the horizon for alpha 0.05 (a
    fixed-horizon interval would use 1.96 and hold at one look only)."""
    if rows <= 0:
        return math.inf
    return se * boundary(rows, alpha, tuned_rho2(horizon, alpha)) / math.sqrt(rows)


def difference(
    mean_c: float, var_c: float, n_c: int, mean_s: float, var_s: float, n_s: int, alpha: float, horizon: float
) -> tuple[float, float, float]:
    """(estimate, lower, upper) for mean_c - mean_s, valid at every look: two independent arms, each with its
    per-row variance (plug-in, as asymptotic confidence sequences allow)."""
    if n_c == 0 or n_s == 0:
        return math.nan, -math.inf, math.inf
    est = mean_c - mean_s
    hw = half_width(math.sqrt(var_c / n_c + var_s / n_s), n_c + n_s, alpha, horizon)
    return est, est - hw, est + hw


def proportion(k: int, n: int, alpha: float, horizon: float) -> tuple[float, float, float]:
    """(estimate, lower, upper) for a share k/n, valid at every look. The variance uses (k+1)/(n+2), so that a
    share seen as 0 or 1 early on still has width."""
    if n == 0:
        return math.nan, 0.0, 1.0
    p, smooth = k / n, (k + 1) / (n + 2)
    hw = half_width(math.sqrt(smooth * (1 - smooth) / n), n, alpha, horizon)
    return p, max(0.0, p - hw), min(1.0, p + hw)


def ratio_mismatch(centred: float, variance: float, alpha: float, horizon_variance: float) -> bool:
    """A sample-ratio mismatch: the canary's count minus its expected count (`centred`, with `variance` the
    sum of p(1-p) over the rows) has crossed the boundary, so the split is not what the router was told."""
    if variance <= 0:
        return False
    return abs(centred) > boundary(variance, alpha, tuned_rho2(horizon_variance, alpha))
