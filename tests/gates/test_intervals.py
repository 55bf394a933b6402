"""Intervals that keep their promise: each fix is pinned against an independent computation on the same rows
(a weighted row bootstrap drawn directly with numpy, an unstratified one), and its small-sample edge cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlops_gates.evaluation import run
from tests.conftest import binary_frame, binary_policy, write_parquet, write_policy


def _accuracy_ci(folder, frame: dict, **policy_extra) -> tuple[float, tuple[float, float]]:
    write_parquet(folder / "eval.parquet", frame)
    gates = [{"type": "accuracy", "metrics": [{"metric": "accuracy", "op": ">=", "value": 0.5}]}]
    pol = binary_policy(gates=gates, settings={"bootstrap": {"replicates": 2000, "seed": 4}}, **policy_extra)
    out = run(write_policy(folder / "gates.yml", pol), folder / "out")
    m = out.record["gates"][0]["metrics"][0]
    return m["value"], tuple(m["ci"])


def _row_bootstrap_sd(stat, n: int, reps: int = 2000, seed: int = 11) -> float:
    rng = np.random.default_rng(seed)
    return float(np.std([stat(rng.integers(0, n, n)) for _ in range(reps)]))


def test_weighted_accuracy_interval_matches_a_weighted_row_bootstrap(tmp_path):
    """Cause 1 of the issue: cell sums scaled by k/n lost the spread of weights within a cell (lognormal
    weights, sigma 1: coverage fell to 75-80%). Now the interval's width matches resampling the rows."""
    frame = binary_frame(n=6000, seed=8)
    n = len(frame["label"])
    w = np.random.default_rng(3).lognormal(0, 1, n)
    frame["w"] = w
    cols = {**binary_policy()["columns"], "weight": "w"}
    value, (lo, hi) = _accuracy_ci(tmp_path, frame, columns=cols)
    hit = (frame["cand_pred"] == frame["label"]).astype(float)
    assert value == pytest.approx(np.sum(w * hit) / np.sum(w), rel=1e-9)
    sd = _row_bootstrap_sd(lambda i: np.sum(w[i] * hit[i]) / np.sum(w[i]), n)
    ours = (hi - lo) / (2 * 1.96)
    assert ours == pytest.approx(sd, rel=0.12), (ours, sd)
    # the old multiplier (k / n: every row of a cell carrying the cell's mean weight) was far narrower
    cells = _cells(frame)
    wbar = (np.bincount(cells, weights=w, minlength=8) / np.maximum(np.bincount(cells, minlength=8), 1))[
        cells
    ]
    naive = _row_bootstrap_sd(lambda i: np.sum(wbar[i] * hit[i]) / np.sum(wbar[i]), n)
    assert naive < 0.8 * sd


def _cells(frame) -> np.ndarray:
    y = (frame["label"] == "yes").astype(int)
    c = (frame["cand_pred"] == "yes").astype(int)
    b = (frame["base_pred"] == "yes").astype(int)
    return y * 4 + c * 2 + b


def test_weights_spread_travels_through_duckdb_and_shard_state(tmp_path, monkeypatch):
    """The per-cell sum of squared weights comes out of DuckDB's query and the shard state like every sum."""
    from mlops_gates import policy as P
    from mlops_gates.stats.collect import collect

    frame = binary_frame(n=2000, seed=9)
    frame["w"] = np.random.default_rng(1).lognormal(0, 1, len(frame["label"]))
    write_parquet(tmp_path / "eval.parquet", frame)
    pol = P.load(
        write_policy(
            tmp_path / "gates.yml", binary_policy(columns={**binary_policy()["columns"], "weight": "w"})
        )
    )
    a, b = collect(pol, "arrow"), collect(pol, "duckdb")
    np.testing.assert_allclose(a.cells.sums["w2"], b.cells.sums["w2"], rtol=1e-9)
    np.testing.assert_allclose(a.cells.sums["w2"].sum(), np.sum(frame["w"] ** 2), rtol=1e-9)
    assert json.dumps(sorted(a.cells.sums)) == json.dumps(sorted(b.cells.sums))
    from mlops_gates.stats.state import merge
    from tests.stats.test_shards import compute_shard

    compute_shard(monkeypatch, tmp_path / "gates.yml", tmp_path / "eval.parquet", tmp_path / "s.json")
    merged = merge([tmp_path / "s.json"], pol)
    np.testing.assert_allclose(merged.cells.sums["w2"].sum(), np.sum(frame["w"] ** 2), rtol=1e-9)


def test_many_small_slices_do_not_shrink_the_overall_interval(tmp_path):
    """Cause 2: overall metrics were resampled within sensitive x slice strata; 500 strata of a few rows each
    took a 95% interval to 79% coverage. Rows are now resampled over the whole set, as a simple random sample
    is drawn: the paired accuracy drop's interval matches a plain row bootstrap of the same rows."""
    frame = binary_frame(n=1200, seed=12)
    n = len(frame["label"])
    frame["slice"] = np.array([f"s{i}" for i in np.random.default_rng(2).integers(0, 100, n)])
    write_parquet(tmp_path / "eval.parquet", frame)
    gates = [{"type": "regression", "metrics": [{"metric": "accuracy", "margin": {"absolute": 0.05}}]}]
    cols = {**binary_policy()["columns"], "slices": ["slice"]}
    pol = binary_policy(gates=gates, columns=cols, settings={"bootstrap": {"replicates": 2000, "seed": 5}})
    out = run(write_policy(tmp_path / "gates.yml", pol), tmp_path / "out")
    m = out.record["gates"][0]["metrics"][0]
    hit_c = (frame["cand_pred"] == frame["label"]).astype(float)
    hit_b = (frame["base_pred"] == frame["label"]).astype(float)
    assert m["value"] == pytest.approx(hit_c.mean() - hit_b.mean(), abs=1e-12)
    sd = _row_bootstrap_sd(lambda i: hit_c[i].mean() - hit_b[i].mean(), n)
    assert (m["ci"][1] - m["ci"][0]) / (2 * 1.96) == pytest.approx(sd, rel=0.12)
    assert out.record["evaluation"]["bootstrap"]["stratified_by"] == []


def test_a_declared_stratified_sample_is_resampled_within_its_strata(tmp_path):
    from mlops_gates import policy as P
    from mlops_gates.gates.base import Context
    from mlops_gates.stats.collect import collect

    frame = binary_frame(n=1200, seed=13)
    write_parquet(tmp_path / "eval.parquet", frame)
    pol = P.load(
        write_policy(
            tmp_path / "gates.yml",
            binary_policy(settings={"bootstrap": {"replicates": 200, "strata": ["sex"]}}),
        )
    )
    ctx = Context(pol, collect(pol))
    boot = ctx.resampled(("y", "c", "b"))
    W = next(boot.blocks()).W[1:]
    t = boot.table
    female = np.array([ctx.stats.strata[s][0] == "F" for s in t.keys["stratum"]])
    np.testing.assert_allclose(W[:, female] @ t.n[female], t.n[female].sum())  # the design's sizes stay fixed
    assert np.std(W[:, ~female] @ t.n[~female]) == 0
    plain = Context(P.load(write_policy(tmp_path / "plain.yml", binary_policy())), ctx.stats)
    Wp = next(plain.resampled(("y", "c", "b")).blocks()).W[1:]
    assert np.std(Wp[:, female] @ t.n[female]) > 0  # a simple random sample: group sizes vary


def _delong_rows(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float]:
    """DeLong's AUC and standard error from the rows themselves (the textbook definition, ties half)."""
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    auc = float(psi.mean())
    var = v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg)
    return auc, float(np.sqrt(var))


def _auc_status(auc: float, se: float, m: int, n: int, thr: float):
    from mlops_gates.gates.common import with_se
    from mlops_gates.gates.judge import Check, judge
    from tests.stats.test_bootstrap import _Policy

    pol = _Policy()
    check = with_se(Check("roc_auc", "overall", np.array([auc]), m + n, ">=", thr, "fail"), se, pol, (m, n))  # type: ignore[arg-type]
    return judge([check], pol)[0]  # type: ignore[arg-type]


def test_a_perfectly_separating_small_sample_is_not_proof():
    """Cause 6: with 10 positives and 10 negatives that happen to separate perfectly, DeLong's SE is 0 and the
    old test PASSed with p = 0 (a population with AUC 0.95 separates perfectly in about a fifth of such
    samples). The score interval with Hanley-McNeil's floor holds it; the interval stays within [0, 1]."""
    res = _auc_status(1.0, 0.0, 10, 10, 0.9)
    assert res.status.value == "INCONCLUSIVE" and res.ci[1] == 1.0 and res.ci[0] < 0.9  # type: ignore[index]
    big = _auc_status(0.97, 0.004, 2000, 2000, 0.9)  # plenty of rows: DeLong's own SE decides
    assert big.status.value == "PASS" and 0 < big.ci[0] < big.ci[1] <= 1  # type: ignore[index]


@pytest.mark.parametrize("m", [10, 15])
def test_small_sample_auc_at_the_margin_is_rarely_promoted(m):
    """A binormal population with AUC exactly 0.9, tested against 0.9 with m positives and m negatives."""
    from scipy.stats import norm

    rng = np.random.default_rng(20 + m)
    d = np.sqrt(2) * norm.ppf(0.9)
    passed = 0
    runs = 2000
    for _ in range(runs):
        pos, neg = rng.normal(d, 1, m), rng.normal(0, 1, m)
        auc, se = _delong_rows(pos, neg)
        passed += _auc_status(auc, se, m, m, 0.9).status.value == "PASS"
    assert passed / runs <= 0.05, passed / runs


def test_a_small_group_in_the_regression_gate_is_never_dropped_silently(tmp_path):
    """Cause 5: the regression gate dropped groups below min_group_size without a word and ignored
    min_group_positives, so a candidate whose TPR in a 20-row group fell from 1 to 0 was PROMOTEd."""
    frame = binary_frame(n=4000, seed=14)
    n = len(frame["label"])
    frame["site"] = np.where(np.arange(n) < 20, "tiny", np.where(np.arange(n) % 2, "north", "south"))
    tiny = frame["site"] == "tiny"
    frame["label"] = np.where(tiny, "yes", frame["label"])
    frame["base_pred"] = np.where(tiny, "yes", frame["base_pred"])  # the baseline finds every positive there
    frame["cand_pred"] = np.where(tiny, "no", frame["cand_pred"])  # the candidate none
    write_parquet(tmp_path / "eval.parquet", frame)
    gates = [{"type": "regression", "metrics": [{"metric": "tpr_difference", "margin": {"absolute": 0.05}}]}]
    cols = {**binary_policy()["columns"], "sensitive": ["site"]}
    out = run(
        write_policy(tmp_path / "gates.yml", binary_policy(gates=gates, columns=cols)), tmp_path / "out"
    )
    gate = out.record["gates"][0]
    assert out.decision.verdict != "PROMOTE"
    tiny_check = next(m for m in gate["metrics"] if m["scope"] == "site=tiny")
    assert tiny_check["status"] == "INCONCLUSIVE" and "20 rows < min_group_size 30" in tiny_check["note"]
    fates = {g["group"]: g["fate"] for g in gate["details"]["groups_considered"]}
    assert fates["site=north"] == fates["site=south"] == "judged" and fates["site=tiny"].startswith(
        "insufficient"
    )
    # min_group_positives counts too: a big group with 3 positives cannot judge a TPR
    frame2 = dict(
        frame,
        label=np.where(
            frame["site"] == "north", np.where(np.arange(n) % 500 == 1, "yes", "no"), frame["label"]
        ),
    )
    write_parquet(tmp_path / "eval.parquet", frame2)
    out = run(tmp_path / "gates.yml", tmp_path / "out2")
    north = next(m for m in out.record["gates"][0]["metrics"] if m["scope"] == "site=north")
    assert north["status"] == "INCONCLUSIVE" and "positives" in north["note"]


def _gap_runs(sizes, rates, threshold, runs=300, reps=400, seed=0, agg="difference"):
    """Simulated gates on one rate over groups: (coverage of the true gap, share judged PASS)."""
    from mlops_gates.stats.simultaneous import Family, gap_bounds, judge

    rng = np.random.default_rng(seed)
    sizes, rates = np.asarray(sizes), np.asarray(rates)
    true = rates.max() - rates.min() if agg == "difference" else rates.min() / rates.max()
    op = "<=" if agg == "difference" else ">="
    covered = passed = 0
    for _ in range(runs):
        x = rng.binomial(sizes, rates)
        point = x / sizes
        boot = rng.binomial(sizes, point, size=(reps, len(sizes))) / sizes
        p = (x + 2) / (sizes + 4)
        fam = Family.of(np.vstack([point, boot]), np.sqrt(p * (1 - p) / sizes))
        p_bad, _, (lo, hi) = judge(fam, gap_bounds([slice(0, len(sizes))], agg), op, threshold, 0.95)
        covered += lo <= true <= hi
        passed += p_bad < 0.025
    return covered / runs, passed / runs


@pytest.mark.parametrize(
    "sizes, rates",
    [
        ([100, 100, 100, 100, 100], [0.6] * 5),  # true gap 0: the percentile bootstrap covered 0-0.2%
        ([450, 450, 450, 450, 50], [0.6, 0.6, 0.6, 0.6, 0.55]),  # one small group, a small true gap
        ([1000, 1000], [0.5, 0.55]),
    ],
)
def test_gap_intervals_cover_and_hold_the_margin(sizes, rates):
    """Causes 3 and 4: bounds from simultaneous (max-t) intervals cover the true max - min gap, and a model
    whose true gap sits exactly at the threshold is promoted in at most 5% of runs."""
    true = max(rates) - min(rates)
    coverage, _ = _gap_runs(sizes, rates, threshold=true + 0.05)
    assert coverage >= 0.935, coverage
    _, at_margin = _gap_runs(sizes, rates, threshold=true, seed=1)
    assert at_margin <= 0.05, at_margin
    _, ratio_margin = _gap_runs(sizes, rates, threshold=min(rates) / max(rates), seed=2, agg="ratio")
    assert ratio_margin <= 0.05, ratio_margin


def _widening_runs(n, p_base, p_cand, margin, runs=300, reps=400, seed=0, agree=0.9):
    """Simulated "gap must not widen" checks on paired rows: share judged PASS."""
    from mlops_gates.stats.simultaneous import Family, judge, widening_bounds

    rng = np.random.default_rng(seed)
    G = len(n)
    n, pb, pc = np.asarray(n), np.asarray(p_base), np.asarray(p_cand)
    both = np.minimum(pb, pc) * agree  # the two models are right on the same rows, mostly
    probs = np.stack([1 - pb - pc + both, pc - both, pb - both, both], axis=1)  # (b, c) = 00, 01, 10, 11
    passed = 0
    for _ in range(runs):
        counts = np.stack([rng.multinomial(n[g], probs[g]) for g in range(G)])
        boot = np.stack([rng.multinomial(n[g], counts[g] / n[g], size=reps) for g in range(G)], axis=1)
        allc = np.concatenate([counts[None], boot])  # (1 + reps, G, 4)
        rc, rb = (allc[..., 1] + allc[..., 3]) / n, (allc[..., 2] + allc[..., 3]) / n
        values = np.concatenate([rc, rb, rc - rb], axis=1)
        fam = Family.of(values, np.full(3 * G, 1e-9), np.r_[np.zeros(2 * G), -np.ones(G)], 1.0)
        parts = [slice(0, G)], [slice(G, 2 * G)], [slice(2 * G, 3 * G)]
        p_bad, _, _ = judge(fam, widening_bounds(*parts, "difference"), "<=", margin, 0.95)
        passed += p_bad < 0.025
    return passed / runs


@pytest.mark.parametrize("n", [[1000, 1000, 1000, 1000, 1000], [4000, 4000, 4000, 4000, 4000]])
def test_gap_must_not_widen_holds_its_level(n):
    """Cause 4: a fair baseline, a candidate one group 0.05 worse, margin 0.05 (exactly at the margin): the
    percentile interval of the difference of two gaps promoted 10-15%; at most 5% now. A candidate that
    moves every group alike is still promoted."""
    base = [0.7] * 5
    worse = [0.7, 0.7, 0.7, 0.7, 0.65]
    assert _widening_runs(n, base, worse, 0.05) <= 0.05
    assert _widening_runs(n, base, worse, 0.05, agree=0.97, seed=4) <= 0.05
    if n[0] >= 4000:  # with enough rows, a candidate better alike in every group is promoted
        assert _widening_runs(n, base, [0.72] * 5, 0.05, runs=100, seed=3, agree=0.97) >= 0.9


def test_an_inconclusive_check_says_how_much_data_would_decide(tmp_path):
    """Beyond the anchors: an INCONCLUSIVE check reports the effect its rows detect and the rows that would
    decide if the estimate held, in the record, the PR comment and the HTML report; quadrupling the rows
    halves the detectable effect, as the interval's width scales."""
    from mlops_gates.stats.inference import to_decide

    frame = binary_frame(n=600, seed=21)
    acc = float(np.mean(frame["cand_pred"] == frame["label"]))
    write_parquet(tmp_path / "eval.parquet", frame)
    gates = [
        {"type": "accuracy", "metrics": [{"metric": "accuracy", "op": ">=", "value": round(acc - 0.02, 3)}]}
    ]
    out = run(write_policy(tmp_path / "gates.yml", binary_policy(gates=gates)), tmp_path / "out")
    m = out.record["gates"][0]["metrics"][0]
    assert m["status"] == "INCONCLUSIVE", m
    d = m["to_decide"]
    assert d["mde"] > abs(m["value"] - m["threshold"]) and d["rows_needed"] > m["n"]
    assert d["rows_needed"] == pytest.approx(
        m["n"] * (d["mde"] / abs(m["value"] - m["threshold"])) ** 2, abs=1
    )
    for f in ("report.md", "report.html"):  # (Markdown escapes punctuation: read it as rendered text)
        assert f"{d['rows_needed']:,}" in (tmp_path / "out" / f).read_text().replace("\\", "")
    a = to_decide(0.8, (0.76, 0.84), 0.81, 400, 0.95)
    b = to_decide(0.8, (0.78, 0.82), 0.81, 1600, 0.95)
    assert (
        a
        and b
        and b["mde"] == pytest.approx(a["mde"] / 2)
        and b["rows_needed"] == pytest.approx(a["rows_needed"], rel=1e-9)
    )
    assert to_decide(0.81, (0.76, 0.86), 0.81, 400, 0.95)["rows_needed"] is None  # type: ignore[index]
    assert not any(
        x.get("to_decide") for g in out.record["gates"] for x in g["metrics"] if x["status"] != "INCONCLUSIVE"
    )
