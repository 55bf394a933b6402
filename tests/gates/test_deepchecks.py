"""The deepchecks gate on real data (UCI Adult), in deepchecks' own environment (made by `make test`)."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_gates.evaluation import run
from tests.conftest import write_policy

ROOT = Path(__file__).resolve().parents[2]
ENV = ROOT / ".cache" / "deepchecks"
ADULT = ROOT / "mlops_gates" / "demo"  # the demo data ships in the package
NOT_APPLICABLE = [
    "DateTrainTestLeakageDuplicates",
    "DateTrainTestLeakageOverlap",
    "IndexTrainTestLeakage",
    "IdentifierLabelCorrelation",
]


@pytest.fixture(scope="module")
def env() -> Path:
    if not (ENV / "mlops-gates-deepchecks.json").is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{ENV} is missing in CI: make test creates it with mlops-gates deepchecks setup")
        pytest.skip(f"{ENV} is missing: run mlops-gates deepchecks setup --path .cache/deepchecks")
    return ENV


@pytest.fixture
def adult(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for name, src in (("eval", "adult-test"), ("train", "adult-train")):
        t = pq.read_table(ADULT / f"{src}.parquet")
        t = t.take(np.sort(rng.choice(t.num_rows, 3000, replace=False)))
        t = t.append_column("score", pa.array(rng.random(t.num_rows)))
        pq.write_table(t, tmp_path / f"{name}.parquet")
    return tmp_path


def policy(gate: dict, env: Path) -> dict:
    return {
        "version": 1,
        "task": "binary",
        "positive_label": ">50K",
        "data": {"eval": {"path": "eval.parquet"}, "reference": {"path": "train.parquet"}},
        "columns": {"label": "income", "candidate": {"score": "score"}, "sensitive": ["sex"]},
        "gates": [{"type": "deepchecks", "env": str(env), **gate}],
    }


def test_data_integrity_suite_on_adult(adult, env):
    gate = {"name": "integrity suite", "suite": "data_integrity", "exclude": NOT_APPLICABLE}
    out = run(write_policy(adult / "gates.yml", policy(gate, env)), adult / "out")
    g = out.record["gates"][0]
    # a real finding: in UCI Adult, education_num is a recoding of education
    assert g["status"] == "FAIL" and "('education', 'education_num')" in g["reason"], g["reason"]
    assert [m["status"] for m in g["metrics"]].count("FAIL") == 1
    scopes = [m["scope"] for m in g["metrics"]]
    assert any(s.startswith("Data Duplicates") for s in scopes) and any(
        s.startswith("Mixed Nulls") for s in scopes
    )
    assert Path(g["details"]["html"]).is_file() and Path(g["details"]["html"]).parent == adult / "out"
    assert "integrity suite" in (adult / "out" / "report.md").read_text()
    case = ET.parse(adult / "out" / "junit.xml").getroot().find("testsuite/testcase")
    assert case is not None and case.get("name") == "integrity suite"


def test_train_test_suite_and_a_failing_condition(adult, env):
    gate = {
        "suite": "train_test_validation",
        "checks": [
            {
                "name": "FeatureDrift",
                "conditions": [
                    {
                        "name": "add_condition_drift_score_less_than",
                        "params": {"max_allowed_numeric_score": 0.0001},
                    }
                ],
            }
        ],
    }
    out = run(write_policy(adult / "gates.yml", policy(gate, env)), adult / "out")
    g = out.record["gates"][0]
    failed = [m for m in g["metrics"] if m["status"] == "FAIL"]
    assert failed and any("numerical drift score < 0.0001" in m["scope"] for m in failed)
    assert out.decision.verdict == "REJECT"
    not_run = [m for m in g["metrics"] if (m["note"] or "").startswith("did not run")]
    assert not_run and all(
        m["status"] == "INCONCLUSIVE" for m in not_run
    )  # by default a check that did not run holds
    assert any("datetime" in m["note"] for m in not_run)


def test_checks_that_did_not_run_follow_the_policy(adult, env):
    gate = {"checks": [{"name": "DateTrainTestLeakageOverlap"}], "train": "reference", "not_run": "warn"}
    out = run(write_policy(adult / "gates.yml", policy(gate, env)), adult / "out")
    assert out.record["gates"][0]["status"] == "WARN" and out.decision.verdict == "PROMOTE"


def test_a_broken_environment_is_an_error_with_the_fix(adult, env, tmp_path):
    gate = {"suite": "data_integrity"}
    missing = policy(gate, tmp_path / "nowhere")
    out = run(write_policy(adult / "gates.yml", missing), adult / "out")
    g = out.record["gates"][0]
    assert g["status"] == "ERROR" and "mlops-gates deepchecks setup" in g["reason"] + json.dumps(g)
    assert out.decision.verdict == "REJECT"
    fake = tmp_path / "old-env"
    (fake / "bin").mkdir(parents=True)
    (fake / "bin" / "python").symlink_to(env / "bin" / "python")
    versions = json.loads((env / "mlops-gates-deepchecks.json").read_text())
    (fake / "mlops-gates-deepchecks.json").write_text(json.dumps({**versions, "numpy": "2.1.0"}))
    g = run(write_policy(adult / "gates.yml", policy(gate, fake)), adult / "out").record["gates"][0]
    assert g["status"] == "ERROR" and "numpy 2.1.0 (pinned 1.26.4)" in g["reason"]
    crash = {"checks": [{"name": "NoSuchCheck"}]}
    g = run(write_policy(adult / "gates.yml", policy(crash, env)), adult / "out").record["gates"][0]
    assert g["status"] == "ERROR" and "deepchecks failed: AttributeError" in g["reason"]


def test_model_evaluation_suite_with_a_scikit_learn_model(adult, env):
    """The model is trained here and predicts in the gate's environment; deepchecks sees only predictions."""
    import pandas as pd
    import skops.io as sio
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric, categorical = ["age", "hours_per_week", "education_num"], ["sex", "race", "relationship"]
    train = pd.read_parquet(adult / "train.parquet")
    model = make_pipeline(
        make_column_transformer(
            (StandardScaler(), numeric), (OneHotEncoder(handle_unknown="ignore"), categorical)
        ),
        LogisticRegression(max_iter=500),
    ).fit(train[numeric + categorical], train["income"])
    sio.dump(model, adult / "model.skops")
    pol = policy(
        {
            "suite": "model_evaluation",
            "features": numeric + categorical,
            "cat_features": categorical,
            "checks": [
                {
                    "name": "TrainTestPerformance",
                    "conditions": [
                        {"name": "add_condition_test_performance_greater_than", "params": {"min_score": 0.97}}
                    ],
                }
            ],
        },
        env,
    )
    del pol["columns"]["candidate"]
    pol["models"] = {"candidate": {"path": "model.skops", "features": numeric + categorical}}
    out = run(write_policy(adult / "gates.yml", pol), adult / "out")
    g = out.record["gates"][0]
    assert g["details"]["model"] == {"role": "candidate", "train_predictions": True}
    scopes = {m["scope"]: m for m in g["metrics"]}
    # the suite's own conditions ran on the model's predictions: a real, passing one ...
    roc = [s for s in scopes if s.startswith("ROC Report") and scopes[s]["status"] == "PASS"]
    assert roc, sorted(scopes)
    # ... and ours, which a 0.83-accurate model cannot meet
    failed = [s for s in scopes if "Scores are greater than 0.97" in s]
    assert failed and all(scopes[s]["status"] == "FAIL" for s in failed), sorted(scopes)
    assert out.decision.verdict == "REJECT"
    html = Path(g["details"]["html"]).read_text()
    assert "Train Test Performance" in html


def test_model_evaluation_on_prediction_columns_without_train_predictions(adult, env):
    gate = {
        "checks": [{"name": "RocReport", "conditions": [{"name": "add_condition_auc_greater_than"}]}],
        "model": "candidate",
        "train": "reference",
    }
    pol = policy(gate, env)
    t = pq.read_table(adult / "train.parquet")
    pq.write_table(t.drop(["score"]), adult / "train.parquet")  # the reference data has no predictions
    out = run(write_policy(adult / "gates.yml", pol), adult / "out")
    g = out.record["gates"][0]
    assert g["status"] != "ERROR", g["reason"]
    assert g["details"]["model"] == {"role": "candidate", "train_predictions": False}
    assert g["status"] != "ERROR", g["reason"]
    # random scores: deepchecks' ROC condition (AUC > 0.7) fails on them
    assert any(m["status"] == "FAIL" and m["scope"].startswith("ROC Report") for m in g["metrics"])
    pol["gates"][0]["model"] = "baseline"  # the policy names no baseline
    g = run(write_policy(adult / "gates.yml", pol), adult / "out").record["gates"][0]
    assert g["status"] == "ERROR" and "model: baseline needs the baseline's prediction columns" in g["reason"]
