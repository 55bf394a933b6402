"""The bootstrap on the table, the interval rule, multiple-comparison corrections, McNemar."""

from __future__ import annotations

import numpy as np
import pytest

from mlops_gates.gates.base import Status
from mlops_gates.gates.judge import Check, judge
from mlops_gates.stats.inference import adjust
from mlops_gates.stats.table import CellTable, from_rows, replicate_weights


def table(counts: list[int], strata: list[int]) -> CellTable:
    return CellTable(
        {"stratum": np.array(strata), "cell": np.arange(len(counts))},
        {"w": np.array(counts, float)},
        np.array(counts),
    )


@pytest.mark.parametrize(
    "counts", [[500, 300, 150, 50], [1, 2, 1, 3, 1, 2, 1, 1]]
)  # multinomial path, row-draw path
def test_replicates_keep_stratum_sizes_and_match_multinomial_moments(counts):
    strata = [0] * (len(counts) // 2) + [1] * (len(counts) - len(counts) // 2)
    t = table(counts, strata)
    w = replicate_weights(t, t.keys["stratum"], 4000, seed=3)
    resampled = w * t.n  # rows per cell in each replicate
    for s in (0, 1):
        idx = np.flatnonzero(np.array(strata) == s)
        assert np.allclose(resampled[:, idx].sum(axis=1), t.n[idx].sum())  # stratified: sizes fixed
        total = t.n[idx].sum()
        p = t.n[idx] / total
        assert np.allclose(resampled[:, idx].mean(axis=0), total * p, rtol=0.05)
        assert np.allclose(resampled[:, idx].var(axis=0), total * p * (1 - p), rtol=0.12)


def test_same_seed_same_replicates():
    t = table([40, 60, 25, 75], [0, 0, 1, 1])
    a = replicate_weights(t, t.keys["stratum"], 50, seed=9)
    b = replicate_weights(t, t.keys["stratum"], 50, seed=9)
    c = replicate_weights(t, t.keys["stratum"], 50, seed=10)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_bootstrap_se_of_accuracy_matches_binomial():
    rng = np.random.default_rng(0)
    n = 5000
    correct = rng.random(n) < 0.8
    t = from_rows({"stratum": np.zeros(n, int), "ok": correct.astype(int)}, {"w": np.ones(n)})
    w = replicate_weights(t, t.keys["stratum"], 3000, seed=1)
    acc = (w @ (t.sums["w"] * t.keys["ok"])) / (w @ t.sums["w"])
    p = correct.mean()
    assert acc.std() == pytest.approx(np.sqrt(p * (1 - p) / n), rel=0.08)


def test_merge_adds_exactly():
    a = from_rows({"k": np.array([0, 1, 1])}, {"w": np.array([1.0, 2.0, 3.0])})
    b = from_rows({"k": np.array([1, 2])}, {"w": np.array([4.0, 5.0])})
    m = a.merge(b)
    assert (
        m.keys["k"].tolist() == [0, 1, 2]
        and m.n.tolist() == [1, 3, 1]
        and m.sums["w"].tolist() == [1.0, 9.0, 5.0]
    )


def test_holm_and_bh_by_hand():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1 -> max-accumulated 0.06
    assert adjust(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: sorted p*4/rank = 0.02, 0.02, 0.04, 0.04 -> min-accumulated from the top
    assert adjust(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert adjust(p, "none") == p


class _Settings:
    def __init__(self, mode="interval", correction="none"):
        self.confidence, self.decision_mode, self.correction = 0.95, mode, correction
        self.min_group_size = 30


class _On:
    insufficient_group = "hold"


class _Policy:
    def __init__(self, **kw):
        self.settings = _Settings(**kw)
        self.on = _On()


def _test(center: float, spread: float, op=">=", thr=0.8, n=2000, seed=0) -> Check:
    reps = np.random.default_rng(seed).normal(center, spread, n)
    return Check("accuracy", "overall", np.r_[center, reps], 100, op, thr, "fail")


def test_interval_rule_pass_fail_inconclusive():
    res = judge([_test(0.9, 0.02), _test(0.7, 0.02), _test(0.81, 0.02)], _Policy())  # type: ignore[arg-type]
    assert [r.status for r in res] == [Status.PASS, Status.FAIL, Status.INCONCLUSIVE]
    lo, hi = res[2].ci  # type: ignore[misc]
    assert lo < 0.8 < hi
    # point-estimate decisions (as TFMA and MLflow): the straddling one passes on its point
    res = judge([_test(0.81, 0.02)], _Policy(mode="point"))  # type: ignore[arg-type]
    assert res[0].status == Status.PASS


def test_correction_guards_against_wrong_rejects_and_leaves_passes_alone():
    """PROMOTE needs every check to PASS (an intersection-union test): no correction belongs on the passes, and
    none is applied, so many checks never make PASS impossible. The correction guards FAIL: a marginal fail
    among many checks becomes INCONCLUSIVE under Holm."""
    passes = [_test(0.843, 0.02, seed=s) for s in range(5)]  # each alone: p about 0.016 -> PASS at 0.025
    assert all(r.status == Status.PASS for r in judge(passes, _Policy(correction="holm")))  # type: ignore[arg-type]
    fails = [_test(0.757, 0.02, seed=s) for s in range(5)]  # each alone: FAIL at 0.025; adjusted, not
    alone = judge(fails, _Policy())  # type: ignore[arg-type]
    holm = judge(fails, _Policy(correction="holm"))  # type: ignore[arg-type]
    assert all(r.status == Status.FAIL for r in alone)
    assert all(r.status == Status.INCONCLUSIVE for r in holm)
    assert all(r.adjusted_p is not None and r.adjusted_p > 0.025 for r in holm)
    clear = judge([_test(0.6, 0.02)] + fails[1:], _Policy(correction="holm"))  # type: ignore[arg-type]
    assert clear[0].status == Status.FAIL  # a clear failure stays a failure


def test_undefined_value_is_error_and_warn_severity_never_blocks():
    t = Check("precision", "overall", np.full(11, np.nan), 100, ">=", 0.5, "fail")
    w = _test(0.7, 0.01)
    w.severity = "warn"
    res = judge([t, w], _Policy())  # type: ignore[arg-type]
    assert res[0].status == Status.ERROR and "undefined" in (res[0].note or "")
    assert res[1].status == Status.WARN


def test_blocked_bootstrap_bounds_memory_and_agrees(tmp_path, binary_case, monkeypatch):
    """Drawing replicates in small blocks (large tables) gives the same point and a like interval, reproducibly."""
    from mlops_gates import policy as P
    from mlops_gates.gates.base import Context
    from mlops_gates.gates.common import metric_values
    from mlops_gates.stats import compute
    from mlops_gates.stats.collect import collect
    from tests.conftest import binary_policy, write_policy

    folder, _ = binary_case
    pol = P.load(
        write_policy(folder / "gates.yml", binary_policy(settings={"bootstrap": {"replicates": 1000}}))
    )
    stats = collect(pol)
    whole, _, _ = metric_values(Context(pol, stats), "c", ["roc_auc", "accuracy"])
    monkeypatch.setattr(compute, "BLOCK", 5_000)  # a few replicates per block
    monkeypatch.setattr(compute, "KEEP", 0)  # never kept: redrawn, identically, on each use
    a, _, _ = metric_values(Context(pol, stats), "c", ["roc_auc", "accuracy"])
    b, _, _ = metric_values(Context(pol, stats), "c", ["roc_auc", "accuracy"])
    for k in ("roc_auc", "accuracy"):
        assert np.array_equal(a[k], b[k]) and a[k].shape == whole[k].shape == (1001,)
        assert a[k][0] == whole[k][0]
        assert np.std(a[k][1:]) == pytest.approx(np.std(whole[k][1:]), rel=0.15)


def test_too_few_rows_is_insufficient_evidence_not_a_pass():
    """One row always right has a bootstrap interval of [1, 1]; it must not pass."""
    tiny = Check("accuracy", "overall", np.ones(101), 1, ">=", 0.6, "fail")
    res = judge([tiny], _Policy())  # type: ignore[arg-type]
    assert res[0].status == Status.INCONCLUSIVE and "1 rows < min_group_size 30" in (res[0].note or "")


def _gate_accuracy(
    true_p: float, n: int, thr: float, rng: np.random.Generator, replicates: int = 400
) -> Status:
    correct = rng.random(n) < true_p
    t = from_rows({"stratum": np.zeros(n, int), "ok": correct.astype(int)}, {"w": np.ones(n)})
    w = np.vstack(
        [
            np.ones((1, len(t))),
            replicate_weights(t, t.keys["stratum"], replicates, int(rng.integers(1 << 30))),
        ]
    )
    acc = (w @ (t.sums["w"] * t.keys["ok"])) / (w @ t.sums["w"])
    return judge([Check("accuracy", "overall", acc, n, ">=", thr, "fail")], _Policy())[0].status  # type: ignore[arg-type]


def test_a_model_exactly_at_the_threshold_is_rarely_promoted():
    """The promise of interval decisions: a model no better than the bar passes in at most about
    (1 - confidence) / 2 of runs, where a point estimate passes in about half."""
    rng = np.random.default_rng(2026)
    runs = [_gate_accuracy(0.8, 400, 0.8, rng) for _ in range(400)]
    passed = sum(s == Status.PASS for s in runs) / len(runs)
    assert passed <= 0.05  # nominal 0.025; the bound leaves room for simulation noise
    good = [_gate_accuracy(0.87, 400, 0.8, rng) for _ in range(100)]
    assert sum(s == Status.PASS for s in good) / len(good) >= 0.9  # and a clearly better one is not held


def test_grouping_keys_packed_or_not_gives_the_same_table():
    """The packed 1-D unique and the row-wise one agree on order, keys and inverse, negatives included."""
    from mlops_gates.stats.table import _unique_rows

    rng = np.random.default_rng(3)
    cols = [rng.integers(-1, 3, 5000), rng.integers(0, 201, 5000), rng.integers(0, 7, 5000)]
    keys, inv = _unique_rows(cols)
    rows, want_inv = np.unique(np.stack(cols, axis=1), axis=0, return_inverse=True)
    assert all(np.array_equal(k, rows[:, i]) for i, k in enumerate(keys))
    assert np.array_equal(inv, want_inv.reshape(-1))
    wide = [rng.integers(0, 2**40, 100), rng.integers(0, 2**40, 100)]  # too wide to pack: the row-wise path
    keys, inv = _unique_rows(wide)
    assert np.array_equal(np.stack(keys, axis=1)[inv], np.stack(wide, axis=1))


def test_paired_auc_interval_unstratified_agrees_with_the_stratified_one(binary_case):
    """The paired score table drops the strata (cells ~ rows otherwise); its interval for the AUC difference
    stays that of a row bootstrap: within a tenth of the stratified one's width here."""
    from mlops_gates import policy as P
    from mlops_gates.gates.base import Context
    from mlops_gates.gates.common import metric_values
    from mlops_gates.stats.collect import collect
    from mlops_gates.stats.compute import score_metrics
    from tests.conftest import binary_policy, write_policy

    folder, _ = binary_case
    pol = P.load(write_policy(folder / "gates.yml", binary_policy()))
    ctx = Context(pol, collect(pol))
    c, _, _ = metric_values(ctx, "c", ["roc_auc"], paired=True)
    b, _, _ = metric_values(ctx, "b", ["roc_auc"], paired=True)
    unstratified = ctx._cache[(("y", "cbin", "bbin"), "row", "unstratified")]
    assert set(unstratified.table.keys["stratum"]) == {0}
    d = c["roc_auc"] - b["roc_auc"]

    def diff(r):
        return (
            score_metrics(r, "c", ctx.stats.edges, 2)["roc_auc"]
            - score_metrics(r, "b", ctx.stats.edges, 2)["roc_auc"]
        )

    strat = ctx.resampled(("y", "cbin", "bbin")).apply(diff)
    w_un = np.subtract(*np.quantile(d[1:], [0.975, 0.025]))
    w_st = np.subtract(*np.quantile(strat[1:], [0.975, 0.025]))
    assert d[0] == pytest.approx(strat[0]) and abs(w_un - w_st) < 0.1 * w_st, (w_un, w_st)


def test_a_share_of_rows_is_judged_by_the_exact_binomial_test():
    """Few flips near a budget: the bootstrap would pass 17/500 under 5%; the exact test holds it, and its
    interval is Clopper-Pearson's."""
    from scipy.stats import binomtest

    k, n = 17, 500
    reps = np.random.default_rng(0).binomial(n, k / n, 2000) / n
    boot = Check("negative_flip_rate", "overall", np.r_[k / n, reps], n, "<=", 0.05, "fail")
    exact = Check("negative_flip_rate", "overall", np.r_[k / n, reps], n, "<=", 0.05, "fail", counts=(k, n))
    res = judge([boot, exact], _Policy())  # type: ignore[arg-type]
    assert res[0].status == Status.PASS and res[1].status == Status.INCONCLUSIVE
    assert res[1].p_value == pytest.approx(binomtest(k, n, 0.05, alternative="less").pvalue)
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert res[1].ci == pytest.approx((ci.low, ci.high))
    # accuracy (higher is better): the p-value is the upper tail, and a clear case still passes
    acc = Check("accuracy", "overall", np.r_[0.9, reps], n, ">=", 0.8, "fail", counts=(450, n))
    res = judge([acc], _Policy())  # type: ignore[arg-type]
    assert res[0].status == Status.PASS
    assert res[0].p_value == pytest.approx(binomtest(450, n, 0.8, alternative="greater").pvalue)


def test_paired_auc_variance_is_delongs_and_agrees_with_the_bootstrap(binary_case):
    """DeLong's variance from the joint bin table equals the textbook definition on the rows (pairwise
    placements, ties half), and the bootstrap of the same table gives a like spread."""
    from mlops_gates import policy as P
    from mlops_gates.gates.base import Context
    from mlops_gates.gates.common import metric_values
    from mlops_gates.stats.collect import collect
    from mlops_gates.stats.compute import delong
    from tests.conftest import binary_policy, write_policy

    folder, _ = binary_case
    pol = P.load(write_policy(folder / "gates.yml", binary_policy()))
    stats = collect(pol)
    (auc_c, auc_b), se = delong(stats, ("c", "b"))

    t = stats.cells.groupby(("y", "cbin", "bbin"))  # back to one entry per row
    rows = {k: np.repeat(v, t.n) for k, v in t.keys.items()}
    pos, neg = rows["y"] == 1, rows["y"] == 0

    def placements(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        below = (s[neg][None, :] < s[pos][:, None]) + 0.5 * (s[neg][None, :] == s[pos][:, None])
        return below.mean(axis=1), below.mean(axis=0)  # per positive, per negative (1 - its placement)

    (v10c, v01c), (v10b, v01b) = placements(rows["cbin"]), placements(rows["bbin"])
    assert (auc_c, auc_b) == pytest.approx((v10c.mean(), v10b.mean()), abs=1e-12)
    S10, S01 = np.cov(v10c, v10b), np.cov(v01c, v01b)
    want = (S10[0, 0] + S10[1, 1] - 2 * S10[0, 1]) / pos.sum() + (
        S01[0, 0] + S01[1, 1] - 2 * S01[0, 1]
    ) / neg.sum()
    assert se == pytest.approx(np.sqrt(want), rel=1e-9)

    ctx = Context(pol, stats)
    c, _, _ = metric_values(ctx, "c", ["roc_auc"], paired=True)
    b, _, _ = metric_values(ctx, "b", ["roc_auc"], paired=True)
    assert c["roc_auc"][0] - b["roc_auc"][0] == pytest.approx(auc_c - auc_b, abs=1e-12)
    assert np.std(c["roc_auc"][1:] - b["roc_auc"][1:]) == pytest.approx(se, rel=0.1)
    # one model alone: S10 / m + S01 / n
    (alone,), se_c = delong(stats, ("c",))
    assert alone == pytest.approx(auc_c, abs=1e-12)
    assert se_c == pytest.approx(np.sqrt(S10[0, 0] / pos.sum() + S01[0, 0] / neg.sum()), rel=1e-9)
    boot, _, _ = metric_values(ctx, "c", ["roc_auc"])  # the candidate's own bins, stratified by group
    assert np.std(boot["roc_auc"][1:]) == pytest.approx(se_c, rel=0.1)


def test_an_estimate_with_a_standard_error_is_judged_by_the_normal_test():
    from scipy.stats import norm

    up = Check(
        "roc_auc (candidate - baseline)", "overall", np.array([-0.004]), 5000, ">=", -0.01, "fail", se=0.002
    )
    down = Check("log_loss", "overall", np.array([0.012]), 5000, "<=", 0.01, "fail", se=0.002)
    res = judge([up, down], _Policy())  # type: ignore[arg-type]
    assert res[0].status == Status.PASS and res[0].p_value == pytest.approx(norm.sf(0.006 / 0.002))
    assert res[0].ci == pytest.approx((-0.004 - 1.959964 * 0.002, -0.004 + 1.959964 * 0.002), abs=1e-6)
    assert res[1].status == Status.INCONCLUSIVE and res[1].p_value == pytest.approx(norm.cdf(0.002 / 0.002))
