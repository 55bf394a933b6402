"""Threat: data or a policy that means nothing is judged anyway, and PROMOTEs.

Every validity rule is checked by the streaming pass whatever engine computes the sums (DuckDB 2.0 read a
Parquet NaN as neither NaN nor above 1, so its query alone PROMOTEd a NaN score), and every input that cannot
mean anything exits 2 with the place named: never a traceback, never a record.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import binary_frame, binary_policy, cli_main, write_parquet, write_policy
from tests.stats.test_engines import spark_ready  # noqa: F401  (fixture)

GATES = [{"type": "accuracy", "metrics": [{"metric": "roc_auc", "op": ">=", "value": 0.5}]}]
MULTI = {
    "version": 1,
    "task": "multiclass",
    "classes": ["a", "b", "c"],
    "data": {"eval": {"path": "eval.parquet"}},
    "columns": {"label": "label", "candidate": {"score": ["pa", "pb", "pc"]}},
    "settings": {"bootstrap": {"replicates": 100}},
    "gates": [{"type": "accuracy", "metrics": [{"metric": "accuracy", "op": ">=", "value": 0.1}]}],
}


def _multiclass(n: int = 300) -> dict:
    rng = np.random.default_rng(3)
    p = rng.dirichlet([1, 1, 1], n)
    return {"label": rng.choice(["a", "b", "c"], n), "pa": p[:, 0], "pb": p[:, 1], "pc": p[:, 2]}


def _spoil(frame: dict, column: str, row: int, value) -> dict:
    out = dict(frame)
    col = np.asarray(out[column]).astype(object if isinstance(value, str) or value is None else np.float64)
    col[row] = value
    out[column] = col
    return out


# (name, frame maker, policy, words the message must hold)
def _cases():
    b = binary_frame(n=400, seed=2)
    weighted = dict(b, w=np.ones(len(b["label"])))
    return {
        "NaN candidate score": (
            _spoil(b, "cand_score", 5, np.nan),
            binary_policy(gates=GATES),
            "'cand_score'",
        ),
        "null candidate score": (
            {**b, "cand_score": pa.array([None if i == 9 else v for i, v in enumerate(b["cand_score"])])},
            binary_policy(gates=GATES),
            "'cand_score'",
        ),
        "score above 1": (_spoil(b, "cand_score", 7, 1.5), binary_policy(gates=GATES), "'cand_score'"),
        "negative score": (_spoil(b, "cand_score", 7, -0.1), binary_policy(gates=GATES), "'cand_score'"),
        "NaN baseline score": (
            _spoil(b, "base_score", 11, np.nan),
            binary_policy(gates=GATES),
            "'base_score'",
        ),
        "infinite baseline score": (
            _spoil(b, "base_score", 3, np.inf),
            binary_policy(gates=GATES),
            "'base_score'",
        ),
        "NaN weight": (
            _spoil(weighted, "w", 4, np.nan),
            binary_policy(gates=GATES, columns={**binary_policy()["columns"], "weight": "w"}),
            "'w'",
        ),
        "negative weight": (
            _spoil(weighted, "w", 4, -2.0),
            binary_policy(gates=GATES, columns={**binary_policy()["columns"], "weight": "w"}),
            "'w'",
        ),
        "null label": (_spoil(b, "label", 2, None), binary_policy(gates=GATES), "label 'label'"),
        "third label value": (
            _spoil(b, "label", 2, "maybe"),
            binary_policy(gates=GATES),
            "more than two values",
        ),
        "null prediction": (_spoil(b, "cand_pred", 2, None), binary_policy(gates=GATES), "'cand_pred'"),
        "probabilities not summing to 1": (_spoil(_multiclass(), "pa", 8, 0.99), MULTI, "do not sum to 1"),
        "label outside classes": (_spoil(_multiclass(), "label", 8, "d"), MULTI, "not in 'classes'"),
    }


CASES = _cases()


@pytest.mark.parametrize("engine", ["arrow", "duckdb", "spark"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_validity_rule_holds_under_every_engine(tmp_path, monkeypatch, capsys, engine, case, request):
    if engine == "spark":
        request.getfixturevalue("spark_ready")
    frame, policy, words = CASES[case]
    pq.write_table(
        pa.table({k: pa.array(v) if not isinstance(v, pa.Array) else v for k, v in frame.items()}),
        tmp_path / "eval.parquet",
    )
    write_policy(tmp_path / "gates.yml", policy)
    code = cli_main(
        monkeypatch,
        "evaluate",
        "--policy",
        str(tmp_path / "gates.yml"),
        "--out",
        str(tmp_path / "out"),
        "--engine",
        engine,
    )
    out, err = capsys.readouterr()
    assert code == 2, (case, engine, out, err)
    assert words in err and "eval.parquet" in err and "Traceback" not in err and "PROMOTE" not in out, err
    assert not (tmp_path / "out" / "decision.json").exists()


def _evaluate_bad(tmp_path, monkeypatch, capsys, policy: dict | None = None, policy_text: str | None = None):
    path = tmp_path / "gates.yml"
    if policy_text is not None:
        path.write_text(policy_text)
    else:
        write_policy(path, policy or binary_policy(gates=GATES))
    code = cli_main(monkeypatch, "evaluate", "--policy", str(path), "--out", str(tmp_path / "out"))
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert "Traceback" not in err and "PROMOTE" not in out
    assert not (tmp_path / "out" / "decision.json").exists()
    return err


def test_two_columns_of_one_name(tmp_path, monkeypatch, capsys):
    frame = binary_frame(n=400)
    names = list(frame) + ["cand_score"]
    arrays = [pa.array(v) for v in frame.values()] + [pa.array(np.ones(200))]
    pq.write_table(pa.Table.from_arrays(arrays, names=names), tmp_path / "eval.parquet")
    err = _evaluate_bad(tmp_path, monkeypatch, capsys)
    assert "column 'cand_score' appears 2 times" in err


@pytest.mark.parametrize("kind", ["struct", "list", "map"])
def test_nested_values_where_a_scalar_is_needed(tmp_path, monkeypatch, capsys, kind):
    frame = binary_frame(n=400)
    table = pa.table({k: pa.array(v) for k, v in frame.items()})
    nested = {
        "struct": pa.array([{"v": "F"}] * 200),
        "list": pa.array([["F", "M"]] * 200),
        "map": pa.array([[("k", "F")]] * 200, pa.map_(pa.string(), pa.string())),
    }[kind]
    table = table.set_column(table.schema.get_field_index("sex"), "sex", nested)
    pq.write_table(table, tmp_path / "eval.parquet")
    err = _evaluate_bad(tmp_path, monkeypatch, capsys)
    assert "column 'sex' holds" in err and "not plain values" in err


def test_nested_json_values(tmp_path, monkeypatch, capsys):
    frame = binary_frame(n=100)
    rows = [
        {k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in frame.items()} for i in range(50)
    ]
    for r in rows:
        r["cand_score"] = {"p": r["cand_score"]}
    (tmp_path / "eval.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    err = _evaluate_bad(tmp_path, monkeypatch, capsys, binary_policy(data="eval.jsonl", gates=GATES))
    assert "column 'cand_score' holds struct" in err


@pytest.mark.parametrize(
    "columns, words",
    [
        ({"candidate": {"score": "label"}}, "column 'label' is already the label"),
        ({"candidate": {"prediction": "base_pred", "score": "base_score"}}, "already the candidate's output"),
        ({"weight": "label"}, "column 'label' is already the label"),
        ({"sensitive": ["cand_pred"]}, "already the candidate's output"),
    ],
)
def test_one_column_two_roles(binary_case, monkeypatch, capsys, columns, words):
    folder, _ = binary_case
    pol = binary_policy(gates=GATES)
    pol["columns"] = {**pol["columns"], **columns}
    err = _evaluate_bad(folder, monkeypatch, capsys, pol)
    assert words in err, err


@pytest.mark.parametrize("value", [".nan", ".NaN", ".inf", "-.inf", ".Inf"])
def test_non_finite_numbers_in_a_policy(binary_case, monkeypatch, capsys, value):
    folder, _ = binary_case
    text = write_policy(folder / "tmp.yml", binary_policy(gates=GATES)).read_text()
    text = text.replace("value: 0.5", f"value: {value}")
    assert value in text
    err = _evaluate_bad(folder, monkeypatch, capsys, policy_text=text)
    assert "is not a finite number" in err and "line" in err


@pytest.mark.parametrize(
    "text, words",
    [
        ("[" * 50_000 + "]" * 50_000, "nested"),
        ("{" * 50_000 + "}" * 50_000, "nested"),
        ("version: 1\n" + "a:\n" + "".join("  " * i + f"b{i}:\n" for i in range(1, 60)), "nested more than"),
        ("? [a, b]\n: 1\n", "a key must be plain text"),
        ("? {a: 1}\n: 1\nversion: 1\n", "a key must be plain text"),
        ("1: x\nversion: 1\n", "a key must be plain text"),
    ],
)
def test_pathological_yaml(tmp_path, monkeypatch, capsys, text, words):
    write_parquet(tmp_path / "eval.parquet", binary_frame(n=50))
    err = _evaluate_bad(tmp_path, monkeypatch, capsys, policy_text=text)
    assert words in err, err
