"""Engines: Arrow streaming, DuckDB and Spark (local mode) compute the same state from the same data."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from mlops_gates import policy as P
from mlops_gates.errors import DataError, GateError
from mlops_gates.evaluation import run
from mlops_gates.stats.collect import EvalStats, collect
from tests.conftest import binary_frame, binary_policy, cli_main, write_parquet, write_policy
from tests.stats.test_shards import GATES, close, compute_shard, metrics


@pytest.fixture(scope="module")
def spark_ready() -> Iterator[None]:
    """Spark needs pyspark and a Java runtime; CI has both (make test installs pyspark)."""
    missing = [what for what, ok in (("pyspark", _has("pyspark")), ("java", shutil.which("java"))) if not ok]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the Spark engine; missing: {', '.join(missing)}")
        pytest.skip(f"Spark engine needs {', '.join(missing)}")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # the driver listens on loopback only
    yield
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:  # the JVM holds a gigabyte; give it back before the next module
        active.stop()


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def same_state(a: EvalStats, b: EvalStats) -> None:
    """Keys and counts exactly; sums up to the order of addition."""
    ta, tb = a.cells, b.cells
    assert list(ta.keys) == list(tb.keys) and set(ta.sums) == set(tb.sums)
    for k in ta.keys:
        assert np.array_equal(ta.keys[k], tb.keys[k]), k
    assert np.array_equal(ta.n, tb.n)
    for k in ta.sums:
        np.testing.assert_allclose(ta.sums[k], tb.sums[k], rtol=1e-9, atol=1e-9, err_msg=k)
    assert (a.strata, a.classes, a.rows, a.has_baseline, a.has_score, a.data_digest) == (
        b.strata,
        b.classes,
        b.rows,
        b.has_baseline,
        b.has_score,
        b.data_digest,
    )


def binary_case(folder: Path) -> Path:
    """Groups, slices, weights, a prediction column beside the scores, missing feature values, a reference."""
    frame = binary_frame(n=3000, seed=4)
    frame["x1"][:5] = np.nan
    frame["region"] = np.where(frame["x3"] > 0.5, "north", "south")
    frame["w"] = np.random.default_rng(2).integers(1, 4, size=len(frame["x1"])).astype(np.float64)
    write_parquet(folder / "eval.parquet", frame)
    write_parquet(folder / "ref.parquet", binary_frame(n=2000, seed=8))
    pol = binary_policy(gates=GATES, settings={"bootstrap": {"replicates": 300, "seed": 2}})
    pol["columns"].update(slices=["region"], weight="w")
    pol["data"]["reference"] = {"path": "ref.parquet"}
    return write_policy(folder / "gates.yml", pol)


def multiclass_case(folder: Path) -> Path:
    """Scores per class (one-vs-rest AUC bins), label predictions, a first model without a baseline."""
    rng = np.random.default_rng(5)
    n = 2500
    logits = rng.normal(size=(n, 3))
    y = np.array([rng.choice(3, p=np.exp(r) / np.exp(r).sum()) for r in logits])
    names = np.array(["cat", "dog", "eel"])

    def softmax(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    cand = softmax(logits + rng.normal(0, 0.7, size=(n, 3)))
    frame = {"label": names[y], "pred": names[cand.argmax(1)], "team": rng.choice(["a", "b"], n)}
    for k in range(3):
        frame[f"c{k}"] = cand[:, k]
    table = pa.table({k: pa.array(v) for k, v in frame.items()})
    for k in range(3):  # an empty baseline (nulls), as a first model's evaluation set holds it
        table = table.append_column(f"b{k}", pa.nulls(n, pa.float64()))
    pq.write_table(table, folder / "eval.parquet")
    pol = {
        "version": 1,
        "task": "multiclass",
        "classes": names.tolist(),
        "data": {"eval": {"path": "eval.parquet"}},
        "columns": {
            "label": "label",
            "candidate": {"prediction": "pred", "score": ["c0", "c1", "c2"]},
            "baseline": {"score": ["b0", "b1", "b2"]},
            "sensitive": ["team"],
        },
        "settings": {"bootstrap": {"replicates": 300}},
        "gates": [
            {
                "type": "accuracy",
                "metrics": [
                    {"metric": "roc_auc", "op": ">=", "value": 0.6},
                    {"metric": "log_loss", "op": "<=", "value": 1.2},
                    {"metric": "brier", "op": "<=", "value": 0.8},
                    {"metric": "ece", "op": "<=", "value": 0.2},
                ],
            },
            {"type": "fairness", "metrics": [{"metric": "accuracy_difference", "op": "<=", "value": 0.2}]},
        ],
    }
    return write_policy(folder / "gates.yml", pol)


def labels_only_case(folder: Path) -> Path:
    """Predictions without scores, an integer label and positive label, as CSV and as Parquet."""
    rng = np.random.default_rng(6)
    n = 2000
    y = rng.integers(0, 2, n)
    frame = {
        "y": y,
        "cand": np.where(rng.random(n) < 0.8, y, 1 - y),
        "base": np.where(rng.random(n) < 0.75, y, 1 - y),
        "g": rng.choice(["u", "v", "w"], n),
    }
    table = pa.table(frame)
    pq.write_table(table, folder / "eval.parquet")
    pcsv.write_csv(table, folder / "eval.csv")
    pol = {
        "version": 1,
        "task": "binary",
        "positive_label": 1,
        "data": {"eval": {"path": "eval.parquet"}},
        "columns": {"label": "y", "candidate": {"prediction": "cand"}, "baseline": {"prediction": "base"}},
        "settings": {"bootstrap": {"replicates": 300}},
        "gates": [
            {"type": "accuracy", "metrics": [{"metric": "accuracy", "op": ">=", "value": 0.7}]},
            {"type": "regression", "metrics": [{"metric": "accuracy", "margin": {"absolute": 0.02}}]},
        ],
    }
    pol["columns"]["slices"] = ["g"]
    write_policy(folder / "csv.yml", {**pol, "data": {"eval": {"path": "eval.csv"}}})
    return write_policy(folder / "gates.yml", pol)


CASES = {"binary": binary_case, "multiclass": multiclass_case, "labels": labels_only_case}


@pytest.mark.parametrize("case", sorted(CASES))
def test_duckdb_computes_the_streaming_state(tmp_path, case):
    pol = P.load(CASES[case](tmp_path))
    same_state(collect(pol, "arrow"), collect(pol, "duckdb"))


def test_duckdb_reads_csv_like_the_streaming_pass(tmp_path):
    labels_only_case(tmp_path)
    pol = P.load(tmp_path / "csv.yml")
    same_state(collect(pol, "arrow"), collect(pol, "duckdb"))


def test_spark_computes_the_streaming_state(tmp_path, spark_ready):
    for case, make in sorted(CASES.items()):
        (tmp_path / case).mkdir()
        pol = P.load(make(tmp_path / case))
        same_state(collect(pol, "arrow"), collect(pol, "spark"))


def test_every_engine_gives_the_same_decision(tmp_path, monkeypatch, spark_ready):
    binary_case(tmp_path)
    records = {}
    for engine in ("arrow", "duckdb", "spark"):
        code = cli_main(
            monkeypatch,
            "evaluate",
            "--policy",
            str(tmp_path / "gates.yml"),
            "--out",
            str(tmp_path / engine),
            "--engine",
            engine,
        )
        assert code in (0, 1)
        records[engine] = json.loads((tmp_path / engine / "decision.json").read_text())
    for engine in ("duckdb", "spark"):
        assert records[engine]["decision"] == records["arrow"]["decision"]
        close(metrics(records[engine]), metrics(records["arrow"]))


def test_shards_from_different_engines_merge_into_the_whole(tmp_path, monkeypatch):
    binary_case(tmp_path)
    table = pq.read_table(tmp_path / "eval.parquet")
    cuts = [0, 1000, table.num_rows]
    states = []
    for i, engine in enumerate(("arrow", "duckdb")):
        pq.write_table(table.slice(cuts[i], cuts[i + 1] - cuts[i]), tmp_path / f"shard{i}.parquet")
        shard, state = tmp_path / f"shard{i}.parquet", tmp_path / f"s{i}.json"
        compute_shard(monkeypatch, tmp_path / "gates.yml", shard, state, "--engine", engine)
        states += ["--stats", str(tmp_path / f"s{i}.json")]
    whole = run(tmp_path / "gates.yml", tmp_path / "whole", engine="arrow").record
    assert cli_main(
        monkeypatch,
        "evaluate",
        "--policy",
        str(tmp_path / "gates.yml"),
        "--out",
        str(tmp_path / "m"),
        *states,
    ) in (0, 1)
    merged = json.loads((tmp_path / "m" / "decision.json").read_text())
    assert merged["decision"] == whole["decision"]
    close(metrics(merged), metrics(whole))


def _out_of_range(frame: dict) -> None:
    frame["cand_score"][[7, 30]] = [1.5, np.nan]


def _as_text(frame: dict) -> None:
    frame["cand_score"] = frame["cand_score"].astype(str)


@pytest.mark.parametrize(
    "spoil, expected",
    [(_out_of_range, "outside [0, 1] at row 8, 31"), (_as_text, "score column 'cand_score' holds string")],
)
def test_bad_input_reads_the_same_whatever_the_engine(tmp_path, spoil, expected):
    frame = binary_frame(n=400, seed=1)
    spoil(frame)
    write_parquet(tmp_path / "eval.parquet", frame)
    pol = P.load(write_policy(tmp_path / "gates.yml", binary_policy()))
    messages = []
    for engine in ("arrow", "duckdb"):
        with pytest.raises(DataError) as err:
            collect(pol, engine)
        messages.append(err.value.render())
    assert messages[0] == messages[1]
    assert expected in messages[1] and "eval.parquet" in messages[1]


def test_engine_choice(tmp_path, monkeypatch, capsys):
    labels_only_case(tmp_path)
    from mlops_gates.stats.engines import choose

    assert choose("auto", P.load(tmp_path / "gates.yml")) == "duckdb"
    assert choose("auto", P.load(tmp_path / "csv.yml")) == "arrow"  # CSV types are inferred: one reader
    assert choose("spark", P.load(tmp_path / "csv.yml")) == "spark"
    # regression buckets rows by position, which an engine's GROUP BY does not see: a clear refusal
    rng = np.random.default_rng(0)
    write_parquet(tmp_path / "r.parquet", {"t": rng.normal(size=50), "p": rng.normal(size=50)})
    reg = {
        "version": 1,
        "task": "regression",
        "data": {"eval": {"path": "r.parquet"}},
        "columns": {"label": "t", "candidate": {"prediction": "p"}},
        "gates": [{"type": "accuracy", "metrics": [{"metric": "mae", "op": "<=", "value": 2}]}],
    }
    write_policy(tmp_path / "reg.yml", reg)
    assert choose("auto", P.load(tmp_path / "reg.yml")) == "arrow"
    args = ["evaluate", "--policy", str(tmp_path / "reg.yml"), "--out", str(tmp_path / "o")]
    assert cli_main(monkeypatch, *args, "--engine", "duckdb") == 2
    assert "use --engine arrow for a regression policy" in capsys.readouterr().err
    for module in ("pyspark", "pyspark.sql"):  # as if pyspark were not installed
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(GateError) as err:
        collect(P.load(tmp_path / "gates.yml"), "spark")
    assert "pip install 'mlops-gates[spark]'" in err.value.render()
