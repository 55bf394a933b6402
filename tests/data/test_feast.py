"""Feast with the real Feast on its local provider, the demo's repository (examples/feast) applied, materialized
and served through Feast's online API with one feature computed differently online. Evaluation data: point-in-
time-correct features fetched through Feast's own API in its own environment give the record the same rows give
from a Parquet file, and every misconfiguration is exit 2 with what to fix. The skew gate catches the skewed
feature, passes the others, and is an ERROR whenever the comparison cannot be made."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import cli_main

ROOT = Path(__file__).resolve().parents[2]
ENV = ROOT / ".cache" / "feast"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """examples/feast prepared (data, model) and applied (`feast apply`) in a fresh folder."""
    if not (ENV / "mlops-gates-feast.json").is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{ENV} is missing in CI: make test creates it")
        pytest.skip(f"{ENV} is missing: run mlops-gates feast setup --path .cache/feast")
    folder = tmp_path_factory.mktemp("feast") / "demo"
    subprocess.run([sys.executable, str(ROOT / "examples" / "feast" / "prepare.py"), str(folder)], check=True)
    subprocess.run(
        [str(ENV / "bin" / "feast"), "apply"], cwd=folder / "feature_repo", check=True, capture_output=True
    )
    subprocess.run(  # the serving layer: materialize, the buggy online write, serve and log
        [str(ENV / "bin" / "python"), str(ROOT / "examples" / "feast" / "serve.py"), str(folder)],
        check=True,
        capture_output=True,
    )
    return folder


def gates_yml(demo: Path, skew: bool = True) -> dict:
    policy = yaml.safe_load((demo / "gates.yml").read_text())
    if not skew:
        policy["gates"] = [g for g in policy["gates"] if g["type"] != "skew"]
    return policy


@pytest.fixture
def evaluate(demo, monkeypatch, capsys):
    monkeypatch.chdir(demo)
    monkeypatch.setenv("MLOPS_GATES_FEAST_ENV", str(ENV))

    def run(policy: dict, out: str) -> tuple[int, dict | None, str]:
        (demo / f"{out}.yml").write_text(yaml.safe_dump(policy, sort_keys=False))
        shutil.rmtree(demo / out, ignore_errors=True)
        capsys.readouterr()
        code = cli_main(monkeypatch, "evaluate", "--policy", f"{out}.yml", "--out", out)
        err = capsys.readouterr().err
        record = demo / out / "decision.json"
        return code, json.loads(record.read_text()) if record.is_file() else None, err

    return run


def point_in_time(demo: Path) -> pd.DataFrame:
    """What Feast must return, computed here: for each entity row, the person's latest feature row at or
    before the row's time (the later rows prepare.py wrote must not be seen)."""
    features = pd.read_parquet(demo / "feature_repo" / "data" / "person.parquet").drop(columns=["created"])
    entities = pd.read_parquet(demo / "entities.parquet")
    joined = pd.merge_asof(
        entities.assign(_row=range(len(entities))).sort_values("event_timestamp"),
        features.rename(columns={"event_timestamp": "seen"}).sort_values("seen"),
        left_on="event_timestamp",
        right_on="seen",
        by="person_id",
    )
    return joined.sort_values("_row").drop(columns=["_row", "seen"]).reset_index(drop=True)


def test_feast_rows_give_the_record_that_the_same_rows_from_parquet_give(demo, evaluate):
    policy = gates_yml(demo, skew=False)
    code, feast_rec, err = evaluate(policy, "from-feast")
    assert code == 0 and feast_rec["decision"] == "PROMOTE", err
    fetched = pd.read_parquet(demo / "from-feast" / "feast-eval.parquet")
    expected = point_in_time(demo)
    assert (fetched["workclass"] != "Later-record").all()  # nothing from after the evaluation time
    pd.testing.assert_frame_equal(fetched[expected.columns], expected, check_dtype=False)

    expected.to_parquet(demo / "expected.parquet", index=False)
    plain = {**policy, "data": {"eval": {"path": "expected.parquet"}}}
    code, parquet_rec, _ = evaluate(plain, "from-parquet")
    assert code == 0
    for key in ("decision", "reasons", "gates", "evaluation"):
        assert feast_rec[key] == parquet_rec[key], key
    for side in (feast_rec, parquet_rec):  # the same model (its measured load and predict times aside)
        side["inputs"]["models"]["candidate"].pop("run")
    assert feast_rec["inputs"]["models"] == parquet_rec["inputs"]["models"]
    source = feast_rec["inputs"]["data"]["eval"]["feast"]
    assert source["project"] == "adult" and source["feature_service"] == "income_model"
    assert [v["name"] for v in source["feature_views"]] == ["person_features"]
    assert source["feature_views"][0]["digest"].startswith("sha256:")
    assert source["entities"]["path"] == "entities.parquet"


def test_feature_references_instead_of_a_service(demo, evaluate):
    policy = gates_yml(demo, skew=False)
    refs = [f"person_features:{f}" for f in json.loads((demo / "model" / "features.json").read_text())]
    policy["data"]["eval"]["feast"]["features"] = refs
    code, rec, err = evaluate(policy, "by-reference")
    assert code == 0, err
    assert rec["inputs"]["data"]["eval"]["feast"]["feature_service"] is None


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"repo": "nowhere"}, "not a Feast repository (no feature_store.yaml)"),
        (
            {"features": "no_such_service"},
            "Feast could not fetch the features: FeatureServiceNotFoundException",
        ),
        ({"features": ["person_features:no_such"]}, "Feast could not fetch the features"),
        ({"entities": "missing.parquet"}, "the entity table is missing"),
        ({"entities": "no-time.parquet"}, "the entity table has no event_timestamp column"),
        ({"env": "/nonexistent/feast"}, "no feast environment at /nonexistent/feast"),
        ({"repo": "offline-gone"}, "Feast could not fetch the features"),  # the offline store's file is gone
    ],
)
def test_a_misconfigured_store_is_exit_2_with_the_fix(demo, evaluate, edit, message):
    pd.read_parquet(demo / "entities.parquet").drop(columns=["event_timestamp"]).to_parquet(
        demo / "no-time.parquet"
    )
    if not (demo / "offline-gone").exists():
        shutil.copytree(demo / "feature_repo", demo / "offline-gone")
        (demo / "offline-gone" / "data" / "person.parquet").unlink()
    policy = gates_yml(demo, skew=False)
    policy["data"]["eval"]["feast"].update(edit)
    code, rec, err = evaluate(policy, "broken")
    assert code == 2 and rec is None and message in err, err


def test_a_dataset_is_a_path_or_a_feast_source_not_both(demo, evaluate):
    policy = gates_yml(demo, skew=False)
    policy["data"]["eval"]["path"] = "entities.parquet"
    code, rec, err = evaluate(policy, "both")
    assert code == 2 and "data.eval" in err and rec is None


def skew_gate(rec: dict) -> dict:
    return next(g for g in rec["gates"] if g["type"] == "skew")


def test_the_skew_gate_catches_the_feature_computed_differently_online(demo, evaluate):
    code, rec, err = evaluate(gates_yml(demo), "skew")
    gate = skew_gate(rec)
    assert code == 1 and rec["decision"] == "REJECT" and gate["status"] == "FAIL", err
    failed = {(m["metric"], m["scope"]) for m in gate["metrics"] if m["status"] == "FAIL"}
    assert failed == {("mismatch_rate", "hours_per_week"), ("psi", "hours_per_week")}
    passed = {m["scope"] for m in gate["metrics"] if m["status"] == "PASS" and m["metric"] == "mismatch_rate"}
    assert passed == {"age", "education_num", "capital_gain", "capital_loss", "workclass", "sex", "race"}
    hours = next(
        m for m in gate["metrics"] if m["scope"] == "hours_per_week" and m["metric"] == "mismatch_rate"
    )
    assert hours["value"] == 1.0 and hours["ci"][0] > 0.99 and hours["n"] == 4000
    stale = next(m for m in gate["metrics"] if m["metric"] == "stale_rate")
    assert stale["status"] == "PASS" and "older than 365 days" in stale["note"]  # the view's TTL

    # the same log with the online values fixed passes; a stricter max_age makes the values stale
    served = pd.read_parquet(demo / "served.parquet")
    fixed = served.assign(
        hours_per_week=point_in_time(demo)
        .set_index("person_id")
        .loc[served["person_id"], "hours_per_week"]
        .to_numpy()
    )
    fixed.to_parquet(demo / "served-fixed.parquet", index=False)
    policy = gates_yml(demo)
    skew = next(g for g in policy["gates"] if g["type"] == "skew")
    skew["served"] = "served-fixed.parquet"
    code, rec, err = evaluate(policy, "skew-fixed")
    assert code == 0 and skew_gate(rec)["status"] == "PASS", err
    skew["max_age"] = "30d"
    code, rec, _ = evaluate(policy, "skew-stale")
    gate = skew_gate(rec)
    assert gate["status"] == "FAIL" and [m["metric"] for m in gate["metrics"] if m["status"] == "FAIL"] == [
        "stale_rate"
    ]


def test_a_skew_comparison_that_cannot_be_made_is_an_error_never_a_pass(demo, evaluate):
    served = pd.read_parquet(demo / "served.parquet")
    served.drop(columns=["event_timestamp"]).to_parquet(demo / "no-time.parquet")
    served.drop(columns=["feature_timestamp"]).to_parquet(demo / "no-seen.parquet")
    served.head(0).to_parquet(demo / "empty.parquet")
    cases = {  # one gate each, in one evaluation
        "missing": ({"served": "nowhere.parquet"}, "nowhere.parquet"),
        "untimed": ({"served": "no-time.parquet"}, "the served log has no event_timestamp column"),
        "unseen": ({"served": "no-seen.parquet"}, "the log has no feature_timestamp column"),
        "empty": ({"served": "empty.parquet"}, "has no rows"),
        "unknown": ({"features": ["no_such_feature"]}, "cannot compare no_such_feature"),
        "elsewhere": ({"feast": {"repo": "nowhere", "features": "income_model"}}, "not a Feast repository"),
    }
    policy = gates_yml(demo)
    skew = next(g for g in policy["gates"] if g["type"] == "skew")
    policy["gates"] = [{**skew, "name": name, **edit} for name, (edit, _) in cases.items()]
    code, rec, err = evaluate(policy, "skew-broken")
    assert code == 1 and rec["decision"] == "REJECT", err
    for gate in rec["gates"]:
        assert gate["status"] == "ERROR" and cases[gate["name"]][1] in gate["reason"], gate
