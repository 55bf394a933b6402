"""Shards: statistics computed per shard and merged decide exactly as the whole file does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from mlops_gates.evaluation import run
from tests.conftest import binary_frame, binary_policy, cli_main, write_parquet, write_policy

GATES = [
    {
        "type": "integrity",
        "max_duplicate_rate": 0.01,
        "max_missing_rate": 0.01,
        "max_conflicting_label_rate": 0.01,
        "contract": {"sex": {"type": "string", "allowed": ["F", "M"]}},
        "drift": {"features": ["x1", "race"], "max_psi": 0.2, "max_ks": 0.1},
    },
    {
        "type": "accuracy",
        "slices": True,
        "metrics": [
            {"metric": "roc_auc", "op": ">=", "value": 0.7},
            {"metric": "ece", "op": "<=", "value": 0.1},
        ],
    },
    {
        "type": "fairness",
        "intersections": True,
        "metrics": [{"metric": "equalized_odds_difference", "op": "<=", "value": 0.3}],
    },
    {
        "type": "regression",
        "metrics": [{"metric": "log_loss", "margin": {"relative": 0.05}}],
        "negative_flips": {"max_rate": 0.1, "per_group": True},
    },
]


def metrics(rec: dict) -> dict:
    return {(g["name"], m["metric"], m["scope"]): m for g in rec["gates"] for m in g["metrics"]}


def close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        for field in ("value", "baseline", "threshold"):
            assert a[k][field] == pytest.approx(b[k][field], abs=1e-9), (k, field)
        assert (a[k]["ci"] is None) == (b[k]["ci"] is None)
        if a[k]["ci"]:
            assert a[k]["ci"] == pytest.approx(b[k]["ci"], abs=1e-9), k
        assert a[k]["status"] == b[k]["status"], k


@pytest.fixture
def case(tmp_path: Path) -> Path:
    frame = binary_frame(n=6000, seed=3)
    frame["x1"][:3] = np.nan  # some missing values, which must add up across shards
    write_parquet(tmp_path / "eval.parquet", frame)
    ref = binary_frame(n=4000, seed=9)
    write_parquet(tmp_path / "ref.parquet", ref)
    table = pq.read_table(tmp_path / "eval.parquet")
    cuts = [0, 700, 1900, table.num_rows]
    for i in range(3):
        pq.write_table(table.slice(cuts[i], cuts[i + 1] - cuts[i]), tmp_path / f"shard{i}.parquet")
    pol = binary_policy(gates=GATES, settings={"bootstrap": {"replicates": 400, "seed": 5}})
    pol["data"]["reference"] = {"path": "ref.parquet"}
    write_policy(tmp_path / "gates.yml", pol)
    return tmp_path


def compute_shard(monkeypatch, policy: Path, data: Path, out: Path, *extra: str) -> None:
    """One CI matrix job: `mlops-gates stats compute` on one shard, as a user types it."""
    args = ["stats", "compute", "--policy", str(policy), "--data", str(data), "--out", str(out), *extra]
    assert cli_main(monkeypatch, *args) == 0


def test_merged_shards_decide_like_the_whole_file(case, monkeypatch, capsys):
    whole = run(case / "gates.yml", case / "whole").record
    for i in range(3):
        compute_shard(monkeypatch, case / "gates.yml", case / f"shard{i}.parquet", case / f"s{i}.json")
    code = cli_main(
        monkeypatch,
        "evaluate",
        "--policy",
        str(case / "gates.yml"),
        "--out",
        str(case / "merged"),
        *[a for i in range(3) for a in ("--stats", str(case / f"s{i}.json"))],
    )
    assert code in (0, 1), capsys.readouterr().err
    import jsonschema

    from mlops_gates.schemas import schema_file

    jsonschema.Draft202012Validator(schema_file("stats.v1.schema.json")).validate(
        json.loads((case / "s0.json").read_text())
    )
    merged = json.loads((case / "merged" / "decision.json").read_text())
    assert (
        merged["decision"] == whole["decision"]
        and merged["evaluation"]["rows"] == whole["evaluation"]["rows"] == 3000
    )
    close(metrics(merged), metrics(whole))
    assert merged["inputs"]["data"]["eval"]["format"] == "stats"
    integrity = next(g for g in merged["gates"] if g["type"] == "integrity")
    assert next(m for m in integrity["metrics"] if m["scope"] == "x1" and m["metric"] == "missing_rate")[
        "value"
    ] == pytest.approx(3 / 3000)


def test_row_order_does_not_change_the_record(case):
    whole = run(case / "gates.yml", case / "a").record
    table = pq.read_table(case / "eval.parquet")
    pq.write_table(table.take(np.random.default_rng(1).permutation(table.num_rows)), case / "eval.parquet")
    shuffled = run(case / "gates.yml", case / "b").record
    close(metrics(shuffled), metrics(whole))


def test_merging_refuses_what_would_be_wrong(case, monkeypatch, capsys):
    def compute(i: int, policy: str = "gates.yml") -> Path:
        out = case / f"s{i}-{policy}.json"
        compute_shard(monkeypatch, case / policy, case / f"shard{i}.parquet", out)
        return out

    def evaluate(*states: Path) -> str:
        args = [a for s in states for a in ("--stats", str(s))]
        assert (
            cli_main(
                monkeypatch, "evaluate", "--policy", str(case / "gates.yml"), "--out", str(case / "o"), *args
            )
            == 2
        )
        return capsys.readouterr().err

    s0, s1 = compute(0), compute(1)
    assert "counted twice" in evaluate(s0, s1, s0)
    (case / "other.yml").write_text((case / "gates.yml").read_text().replace("value: 0.7", "value: 0.71"))
    assert "computed under another policy" in evaluate(s0, compute(1, "other.yml"))
    state = json.loads(s1.read_text())
    state["format"] = "mlops-gates-stats/0"
    s1.write_text(json.dumps(state))
    assert "statistics format 'mlops-gates-stats/0'" in evaluate(s0, s1)
    assert "not found" in evaluate(s0, case / "missing.json")
