"""The always-valid bounds under peeking: a rollout that looks after every window must not promote a canary
that sits exactly at the margin more often than alpha, over all looks together, while a fixed-horizon test
checked at every look does (the inflation these bounds exist to prevent; it also shows the simulation can
tell the two apart)."""

from __future__ import annotations

import math

import numpy as np

from mlops_gates.stats import sequential

ALPHA, MARGIN, HORIZON = 0.05, 0.02, 20_000


def peeking(rule, runs: int, looks: int, per_look: int, share: float, p_stable: float, seed: int) -> float:
    """The share of simulated rollouts in which `rule` promotes at some look; the canary's true accuracy is the
    stable's minus the margin, the worst a canary may be and still be promoted wrongly."""
    rng = np.random.default_rng(seed)
    p_canary = p_stable - MARGIN
    promoted = 0
    for _ in range(runs):
        kc = ks = nc = ns = 0
        for _ in range(looks):
            a = rng.binomial(per_look, share)
            kc, ks, nc, ns = (
                kc + rng.binomial(a, p_canary),
                ks + rng.binomial(per_look - a, p_stable),
                nc + a,
                ns + per_look - a,
            )
            if min(nc, ns) >= 200 and rule(kc, nc, ks, ns):
                promoted += 1
                break
    return promoted / runs


def ours(kc: int, nc: int, ks: int, ns: int) -> bool:
    vc, vs = ((k + 1) / (n + 2) * (1 - (k + 1) / (n + 2)) for k, n in ((kc, nc), (ks, ns)))
    _, lower, _ = sequential.difference(kc / nc, vc, nc, ks / ns, vs, ns, ALPHA, HORIZON)
    return lower > -MARGIN


def fixed_horizon(kc: int, nc: int, ks: int, ns: int) -> bool:
    pc, ps = kc / nc, ks / ns
    se = math.sqrt(pc * (1 - pc) / nc + ps * (1 - ps) / ns)
    return (pc - ps + MARGIN) / se > 1.645  # a one-sided 5% non-inferiority test, fine at one look only


def test_peeking_at_every_window_never_promotes_a_canary_at_the_margin_more_often_than_alpha():
    for per_look, share in ((400, 0.5), (2_000, 0.1)):
        ours_rate = peeking(ours, 600, 30, per_look, share, 0.85, seed=per_look)
        fixed_rate = peeking(fixed_horizon, 600, 30, per_look, share, 0.85, seed=per_look)
        assert ours_rate <= ALPHA + 0.02, (
            per_look,
            share,
            ours_rate,
        )  # 0.02: two standard errors of 600 runs
        assert fixed_rate > 2 * ALPHA, (per_look, share, fixed_rate)


def test_the_bound_is_about_three_standard_errors_at_the_horizon_and_wider_before():
    se = 0.01
    at = sequential.half_width(se, HORIZON, ALPHA, HORIZON) / se
    early = sequential.half_width(se, HORIZON // 20, ALPHA, HORIZON) / se
    assert 2.5 < at < 3.5 and early > at
    assert sequential.half_width(se, 0, ALPHA, HORIZON) == math.inf


def test_a_share_seen_as_zero_still_has_width():
    est, lo, hi = sequential.proportion(0, 300, ALPHA, HORIZON)
    assert est == 0 and lo == 0 and hi > 0.005


def test_sample_ratio_mismatch_fires_on_a_broken_split_and_rarely_on_a_sound_one():
    rng = np.random.default_rng(3)
    p, false_alarms = 0.2, 0
    for _ in range(300):
        n = canary = 0
        for _ in range(30):
            got = rng.binomial(1_000, p)
            n, canary = n + 1_000, canary + got
            if sequential.ratio_mismatch(canary - n * p, n * p * (1 - p), ALPHA, HORIZON * p * (1 - p)):
                false_alarms += 1
                break
    assert false_alarms / 300 <= ALPHA + 0.025
    n = 50_000
    assert sequential.ratio_mismatch(n * 0.19 - n * p, n * p * (1 - p), 0.001, HORIZON * p * (1 - p))
