"""Evaluation data from Feast: the demo's repository (examples/feast) applied with the real Feast on its local
provider, point-in-time-correct features fetched through Feast's own API in its own environment; the record is
the one the same rows give from a Parquet file, and every misconfiguration is exit 2 with what to fix."""

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
    return folder


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
    policy = yaml.safe_load((demo / "gates.yml").read_text())
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
    policy = yaml.safe_load((demo / "gates.yml").read_text())
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
    ],
)
def test_a_misconfigured_store_is_exit_2_with_the_fix(demo, evaluate, edit, message):
    pd.read_parquet(demo / "entities.parquet").drop(columns=["event_timestamp"]).to_parquet(
        demo / "no-time.parquet"
    )
    policy = yaml.safe_load((demo / "gates.yml").read_text())
    policy["data"]["eval"]["feast"].update(edit)
    code, rec, err = evaluate(policy, "broken")
    assert code == 2 and rec is None and message in err, err


def test_a_dataset_is_a_path_or_a_feast_source_not_both(demo, evaluate):
    policy = yaml.safe_load((demo / "gates.yml").read_text())
    policy["data"]["eval"]["path"] = "entities.parquet"
    code, rec, err = evaluate(policy, "both")
    assert code == 2 and "data.eval" in err and rec is None
