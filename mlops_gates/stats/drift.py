"""Drift statistics between two histograms over the same bins: PSI, KS, Jensen-Shannon, chi-squared."""

from __future__ import annotations

import numpy as np

SMOOTH = 1e-4  # added to empty bins so PSI stays finite


def psi(ref: np.ndarray, cur: np.ndarray) -> float:
    p = ref / max(ref.sum(), 1) + SMOOTH
    q = cur / max(cur.sum(), 1) + SMOOTH
    p, q = p / p.sum(), q / q.sum()
    return float(((q - p) * np.log(q / p)).sum())


def ks(ref: np.ndarray, cur: np.ndarray) -> float:
    return float(np.max(np.abs(np.cumsum(ref) / max(ref.sum(), 1) - np.cumsum(cur) / max(cur.sum(), 1))))


def js(ref: np.ndarray, cur: np.ndarray) -> float:
    """Jensen-Shannon distance, base 2 (0 = same distribution, 1 = disjoint)."""
    from scipy.special import rel_entr

    p, q = ref / ref.sum(), cur / cur.sum()
    m = (p + q) / 2
    return float(np.sqrt(max(0.0, (rel_entr(p, m).sum() + rel_entr(q, m).sum()) / 2 / np.log(2))))


def chi2_p(ref: np.ndarray, cur: np.ndarray) -> float:
    """p-value of the chi-squared test that both sets share one distribution over the categories (Yates'
    correction on a 2x2 table). scipy.special, not scipy.stats: the latter costs 2 s of import."""
    from scipy.special import chdtrc

    keep = (ref + cur) > 0
    if keep.sum() < 2:
        return 1.0
    obs = np.vstack([ref[keep], cur[keep]]).astype(np.float64)
    exp = obs.sum(axis=1, keepdims=True) * obs.sum(axis=0, keepdims=True) / obs.sum()
    dof = obs.shape[1] - 1
    if dof == 1:  # Yates: move each count half a unit towards its expectation
        obs = obs + np.sign(exp - obs) * np.minimum(0.5, np.abs(exp - obs))
    return float(chdtrc(dof, ((obs - exp) ** 2 / exp).sum()))
