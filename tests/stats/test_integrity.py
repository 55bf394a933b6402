"""Integrity facts and drift statistics against hand counts and scipy."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats as sps

from mlops_gates.evaluation import run
from mlops_gates.stats import integrity, row_hashes
from mlops_gates.stats.drift import chi2_p, js, ks, psi
from tests.conftest import write_policy


def test_psi_ks_js_chi2_by_hand_and_scipy():
    ref = np.array([100.0, 200.0, 300.0, 400.0])
    cur = np.array([150.0, 250.0, 250.0, 350.0])
    p, q = ref / ref.sum(), cur / cur.sum()
    assert psi(ref, cur) == pytest.approx(
        ((q - p) * np.log(q / p)).sum(), rel=1e-3
    )  # smoothing barely moves it
    assert ks(ref, cur) == pytest.approx(np.max(np.abs(np.cumsum(p) - np.cumsum(q))))
    m = (p + q) / 2
    jsd = 0.5 * (p * np.log2(p / m)).sum() + 0.5 * (q * np.log2(q / m)).sum()
    assert js(ref, cur) == pytest.approx(np.sqrt(jsd))
    assert chi2_p(ref, cur) == pytest.approx(sps.chi2_contingency(np.vstack([ref, cur]))[1])
    for r, c in [
        ([30.0, 10.0], [20.0, 25.0]),
        ([5.0, 0.0, 7.0], [1.0, 0.0, 9.0]),
        ([10.0, 0.4], [10.0, 0.6]),
    ]:
        r, c = np.array(r), np.array(c)
        keep = (r + c) > 0  # 2x2 tables take Yates' correction, as scipy does
        assert chi2_p(r, c) == pytest.approx(sps.chi2_contingency(np.vstack([r[keep], c[keep]]))[1])
        assert js(r, c) == pytest.approx(_js_scipy(r, c))


def _js_scipy(r: np.ndarray, c: np.ndarray) -> float:
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(r / r.sum(), c / c.sum(), base=2))


def _case(tmp_path, n=1000, seed=0):
    rng = np.random.default_rng(seed)
    train = {
        "age": rng.integers(18, 80, 3000),
        "city": rng.choice(["x", "y", "z"], 3000, p=[0.5, 0.3, 0.2]),
        "label": rng.choice(["a", "b"], 3000),
    }
    ev = {
        "age": rng.integers(18, 80, n) + 0.0,
        "city": rng.choice(["x", "y", "z"], n, p=[0.5, 0.3, 0.2]).astype(object),
        "label": rng.choice(["a", "b"], n),
    }
    ev["score"] = rng.random(n)
    return train, ev


def _write(tmp_path, train, ev, gate):
    pq.write_table(pa.table(train), tmp_path / "train.parquet")
    pq.write_table(pa.table(ev), tmp_path / "eval.parquet")
    policy = {
        "version": 1,
        "task": "binary",
        "positive_label": "b",
        "data": {
            "eval": {"path": "eval.parquet"},
            "reference": {"path": "train.parquet"},
            "training": {"path": "train.parquet"},
        },
        "columns": {"label": "label", "candidate": {"score": "score"}},
        "gates": [dict(type="integrity", **gate)],
    }
    out = run(write_policy(tmp_path / "gates.yml", policy), tmp_path / "out")
    return out, {(m["metric"], m["scope"]): m for m in out.record["gates"][0]["metrics"]}


@pytest.mark.parametrize("held", [None, 64], ids=["in-memory", "spilled-to-disk"])
def test_duplicates_conflicts_leakage_missing_counted(tmp_path, monkeypatch, held):
    """The same counts whether the row hashes stay in memory or spill to disk in buckets (past 64 rows here)."""
    if held:
        monkeypatch.setattr(row_hashes, "HELD_ROWS", held)
        spilled = []
        spill = row_hashes.RowHashes._spill
        monkeypatch.setattr(row_hashes.RowHashes, "_spill", lambda self: (spilled.append(1), spill(self))[1])
    train, ev = _case(tmp_path)
    ev["age"][:5] = ev["age"][100:105]  # rows 0-4 copy features of rows 100-104 ...
    ev["city"][:5] = ev["city"][100:105]
    ev["label"][:5] = ev["label"][100:105]  # ... and label: 5 duplicates
    ev["age"][5] = ev["age"][200]
    ev["city"][5] = ev["city"][200]
    ev["label"][5] = "a" if ev["label"][200] == "b" else "b"  # row 5 conflicts with row 200: 2 rows
    ev["age"][6], ev["city"][6] = (
        float(train["age"][0]),
        train["city"][0],
    )  # one row also in training (int vs float)
    age = ev["age"].astype(object)
    age[7:10] = None
    ev["age"] = age
    out, m = _write(
        tmp_path,
        train,
        ev,
        {
            "max_duplicate_rate": 0.001,
            "max_conflicting_label_rate": 0.01,
            "max_leakage_rate": 0.0,
            "max_missing_rate": 0.002,
        },
    )
    # independent counts with plain Python
    rows = list(zip(ev["age"], ev["city"], ev["label"], strict=True))
    assert m[("duplicate_rate", "rows")]["value"] == pytest.approx((len(rows) - len(set(rows))) / 1000)
    assert m[("duplicate_rate", "rows")]["status"] == "FAIL"
    feats: dict = {}
    for a, c, lab in rows:
        feats.setdefault((a, c), set()).add(lab)
    conflicting = sum(1 for a, c, _ in rows if len(feats[(a, c)]) > 1)
    assert m[("conflicting_label_rate", "rows")]["value"] == pytest.approx(conflicting / 1000)
    train_rows = {(float(a), c) for a, c in zip(train["age"], train["city"], strict=True)}
    leaked = sum(1 for a, c, _ in rows if a is not None and (float(a), c) in train_rows)
    assert leaked >= 1 and m[("leakage_rate", "rows also in training data")]["value"] == pytest.approx(
        leaked / 1000
    )
    assert m[("leakage_rate", "rows also in training data")]["status"] == "FAIL"
    assert (
        m[("missing_rate", "age")]["value"] == pytest.approx(0.003)
        and m[("missing_rate", "age")]["status"] == "FAIL"
    )
    assert out.decision.verdict == "REJECT"
    if held:
        assert spilled  # the counts above came from buckets on disk


def test_contract_violations_named(tmp_path):
    train, ev = _case(tmp_path)
    ev["age"][3] = 150
    ev["city"][4] = "moon"
    _, m = _write(
        tmp_path,
        train,
        ev,
        {
            "contract": {
                "age": {"type": "integer", "max": 120},
                "city": {"type": "string", "allowed": ["x", "y", "z"]},
                "zip": {"type": "string"},
            }
        },
    )
    assert (
        m[("contract_violations", "age: type")]["status"] == "FAIL"
    )  # a float column, the contract says integer
    assert (
        m[("contract_violations", "city: allowed")]["value"] == 1
        and "moon" in m[("contract_violations", "city: allowed")]["note"]
    )
    assert m[("contract_violations", "zip: present")]["status"] == "FAIL"


def test_drift_detects_a_shift_and_passes_without_one(tmp_path):
    train, ev = _case(tmp_path, n=3000)
    gate = {
        "drift": {
            "features": ["age", "city"],
            "max_psi": 0.1,
            "max_ks": 0.1,
            "max_js": 0.1,
            "min_chi2_pvalue": 0.001,
        }
    }
    _, m = _write(tmp_path, train, ev, gate)
    assert all(v["status"] == "PASS" for v in m.values()), m
    # KS on the reference grid is close to scipy's exact two-sample statistic
    assert m[("ks", "age")]["value"] == pytest.approx(
        sps.ks_2samp(train["age"], ev["age"]).statistic, abs=0.02
    )
    ev["age"] = ev["age"] + 15
    ev["city"] = np.where(np.arange(3000) % 2 == 0, "z", ev["city"])
    _, m = _write(tmp_path, train, ev, gate)
    for key in [("psi", "age"), ("ks", "age"), ("js_distance", "city"), ("chi2_pvalue", "city")]:
        assert m[key]["status"] == "FAIL", key
    assert m[("ks", "age")]["value"] == pytest.approx(
        sps.ks_2samp(train["age"], ev["age"]).statistic, abs=0.02
    )


def test_contract_rules_that_cannot_apply_are_violations(tmp_path):
    train, ev = _case(tmp_path)
    _, m = _write(tmp_path, train, ev, {"contract": {"age": {"allowed": ["young"]}, "city": {"min": 3}}})
    assert m[("contract_violations", "age: allowed")]["status"] == "FAIL"
    assert "are not double values" in m[("contract_violations", "age: allowed")]["note"]
    assert m[("contract_violations", "city: range")]["status"] == "FAIL"
    assert "min/max need numbers" in m[("contract_violations", "city: range")]["note"]


def test_spilled_buckets_count_as_memory_does_and_are_removed():
    """Random hashes with planted repeats and conflicts: buckets on disk give the counts one array gives."""
    import gc

    rng = np.random.default_rng(1)
    fh = rng.integers(0, 2**63, 50_000, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    fh[:3000] = fh[10_000:13_000]  # repeated features
    y = rng.integers(0, 2, 50_000).astype(np.uint8)
    whole = row_hashes.RowHashes.of(fh, y)
    parts = row_hashes.RowHashes(held_rows=7_000)
    for start in range(0, len(fh), 5_000):
        parts.add(fh[start : start + 5_000], y[start : start + 5_000])
    folder = parts.folder
    assert folder is not None and len(list(folder.iterdir())) == 2 * row_hashes.BUCKETS
    assert len(list(parts.parts())) == row_hashes.BUCKETS
    a = integrity.IntegrityStats(50_000, [], {}, [], None, {}, whole)
    b = integrity.IntegrityStats(50_000, [], {}, [], None, {}, parts)
    assert a.duplicates == b.duplicates > 0 and a.conflicts == b.conflicts > 0
    assert sorted(parts.arrays()[0]) == sorted(fh)
    del a, b, parts
    gc.collect()
    assert not folder.exists()
