"""The whole flow on real (small) models: decisions, the record, determinism, formats, reports."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET

import jsonschema
import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from mlops_gates import policy as P
from mlops_gates.errors import PolicyError
from mlops_gates.evaluation import run
from mlops_gates.report import markdown
from mlops_gates.schemas import schema_file
from tests.conftest import binary_frame, binary_policy, write_parquet, write_policy

FULL_GATES = [
    {
        "type": "integrity",
        "max_missing_rate": 0.01,
        "max_duplicate_rate": 0.01,
        "min_class_rate": 0.1,
        "contract": {"sex": {"type": "string", "allowed": ["F", "M"]}},
        "prediction_drift": {"max_psi": 0.5},
    },
    {
        "type": "accuracy",
        "metrics": [
            {"metric": "roc_auc", "op": ">=", "value": 0.7},
            {"metric": "accuracy", "op": ">=", "value": 0.65},
        ],
    },
    {
        "type": "fairness",
        "intersections": True,
        "metrics": [
            # six intersectional groups of 2,000 rows: simultaneous intervals are honest about how little
            # that shows (the percentile bootstrap of a max - min was not)
            {"metric": "equalized_odds_difference", "op": "<=", "value": 0.45},
            {"metric": "demographic_parity_ratio", "op": ">=", "value": 0.2},
        ],
    },
    {
        "type": "regression",
        "metrics": [
            {"metric": "roc_auc", "margin": {"absolute": 0.01}},
            {"metric": "log_loss", "margin": {"relative": 0.05}},
            {"metric": "equalized_odds_difference", "margin": {"absolute": 0.2}},
        ],
        "negative_flips": {"max_rate": 0.1, "per_group": True},
    },
]


def record_schema() -> dict:
    return schema_file("decision.v1.schema.json")


def evaluate(folder, policy, out="out"):
    return run(write_policy(folder / "gates.yml", policy), folder / out)


def statuses(outcome) -> dict[str, str]:
    return {g.name: g.status.value for g in outcome.results}


def test_better_candidate_is_promoted_with_a_valid_record(binary_case):
    folder, _ = binary_case
    out = evaluate(
        folder,
        binary_policy(
            gates=FULL_GATES, settings={"bootstrap": {"replicates": 1000, "seed": 3}, "correction": "holm"}
        ),
    )
    assert out.decision.verdict == "PROMOTE", statuses(out)
    jsonschema.Draft202012Validator(record_schema(), format_checker=jsonschema.FormatChecker()).validate(
        out.record
    )
    assert out.record["inputs"]["data"]["eval"]["digest"].startswith("sha256:")
    assert all(g["correction"] == "holm" for g in out.record["gates"])
    reg = next(g for g in out.record["gates"] if g["type"] == "regression")
    auc = next(m for m in reg["metrics"] if m["metric"].startswith("roc_auc"))
    assert auc["ci"][0] <= auc["value"] <= auc["ci"][1] and auc["value"] > 0 and auc["baseline"] is not None
    assert "DeLong" in auc["note"]


def test_auc_intervals_are_delongs_and_the_bootstrap_takes_weighted_rows(tmp_path):
    """A binary task without weights: DeLong's intervals for the AUC and the paired AUC difference (no
    resample of the score tables); with weights, the bootstrap's. Weights of one are the same rows, so the
    intervals must be alike."""
    frame = binary_frame()
    frame["w"] = np.ones(len(frame["label"]))
    write_parquet(tmp_path / "eval.parquet", frame)
    gates = [
        {"type": "accuracy", "metrics": [{"metric": "roc_auc", "op": ">=", "value": 0.7}]},
        {"type": "regression", "metrics": [{"metric": "roc_auc", "margin": {"absolute": 0.01}}]},
    ]

    def aucs(policy: dict, out: str) -> list[dict]:
        return [g["metrics"][0] for g in evaluate(tmp_path, policy, out).record["gates"]]

    plain = aucs(binary_policy(gates=gates), "a")
    weighted = aucs(binary_policy(gates=gates, columns={**binary_policy()["columns"], "weight": "w"}), "b")
    for p, w in zip(plain, weighted, strict=True):
        assert "DeLong" in p["note"] and "DeLong" not in (w["note"] or "")
        assert p["value"] == pytest.approx(w["value"], abs=1e-12)
        assert w["ci"][1] - w["ci"][0] == pytest.approx(p["ci"][1] - p["ci"][0], rel=0.15)
    # one positive: an AUC, but no variance to judge it by
    one = {k: v[:200] for k, v in binary_frame().items()}
    one["label"] = np.where(np.arange(200) == 0, "yes", "no")
    write_parquet(tmp_path / "eval.parquet", one)
    for lone in aucs(binary_policy(gates=gates), "c"):
        assert lone["status"] == "INCONCLUSIVE" and "no variance" in lone["note"]


def test_worse_candidate_is_rejected_and_flips_are_counted(tmp_path):
    frame = binary_frame(flip_noise=0.15)
    write_parquet(tmp_path / "eval.parquet", frame)
    out = evaluate(tmp_path, binary_policy(gates=FULL_GATES[3:]))
    assert out.decision.verdict == "REJECT"
    reg = out.record["gates"][0]
    y, c, b = frame["label"], frame["cand_pred"], frame["base_pred"]
    flips = next(m for m in reg["metrics"] if m["metric"] == "negative_flip_rate" and m["scope"] == "overall")
    assert flips["value"] == pytest.approx(((b == y) & (c != y)).mean(), abs=1e-12)
    assert flips["status"] == "FAIL"
    # McNemar's exact test from the same rows, by scipy
    from scipy.stats import binomtest

    lost, won = int(((b == y) & (c != y)).sum()), int(((b != y) & (c == y)).sum())
    assert reg["details"]["mcnemar"]["p_value"] == pytest.approx(binomtest(lost, lost + won, 0.5).pvalue)
    assert reg["details"]["mcnemar"]["baseline_right_candidate_wrong"] == lost


def test_small_sample_is_inconclusive_then_hold_or_what_the_policy_says(tmp_path):
    frame = {k: v[:120] for k, v in binary_frame().items()}
    write_parquet(tmp_path / "eval.parquet", frame)
    acc = float((frame["label"] == frame["cand_pred"]).mean())
    gates = [
        {"type": "accuracy", "metrics": [{"metric": "accuracy", "op": ">=", "value": round(acc - 0.02, 3)}]}
    ]
    out = evaluate(tmp_path, binary_policy(gates=gates))
    assert out.decision.verdict == "HOLD" and statuses(out)["accuracy"] == "INCONCLUSIVE"
    assert (
        evaluate(tmp_path, binary_policy(gates=gates, on={"inconclusive": "reject"})).decision.verdict
        == "REJECT"
    )
    point = binary_policy(gates=gates, settings={"decision_mode": "point"})
    assert evaluate(tmp_path, point).decision.verdict == "PROMOTE"  # the point estimate clears the bar


def test_same_inputs_same_record(binary_case):
    folder, _ = binary_case
    pol = binary_policy(gates=FULL_GATES)
    a = evaluate(folder, pol, "a").record
    b = evaluate(folder, pol, "b").record
    a.pop("created_at"), b.pop("created_at")
    assert a == b


def test_csv_jsonl_and_parquet_give_the_same_gates(binary_case, monkeypatch):
    from mlops_gates.data import reader
    from mlops_gates.policy import Dataset

    folder, frame = binary_case
    table = pa.table({k: pa.array(v) for k, v in frame.items()})
    pcsv.write_csv(table, folder / "eval.csv")
    (folder / "eval.jsonl").write_text("\n".join(json.dumps(r) for r in table.to_pylist()) + "\n")
    monkeypatch.setattr(reader, "JSON_BLOCK", 1 << 15)  # JSONL streams: many blocks, never the whole file
    batches = list(reader.iter_batches(Dataset(folder / "eval.jsonl", "jsonl"), ["label"]))
    assert len(batches) > 5 and sum(b.num_rows for b in batches) == table.num_rows
    results = []
    for name in ("eval.parquet", "eval.csv", "eval.jsonl"):
        rec = evaluate(folder, binary_policy(data=name, gates=FULL_GATES[1:]), f"out-{name}").record
        results.append(json.dumps(rec["gates"], sort_keys=True))
    assert results[0] == results[1] == results[2]


def test_missing_baseline_follows_the_policy(binary_case):
    folder, frame = binary_case
    n = len(frame["label"])
    empty = dict(frame, base_pred=np.array([None] * n, dtype=object), base_score=np.full(n, np.nan))
    write_parquet(folder / "eval.parquet", {**empty, "base_score": pa.array([None] * n, pa.float64())})
    gates = FULL_GATES[1:2] + [
        {"type": "regression", "metrics": [{"metric": "accuracy", "margin": {"absolute": 0.01}}]}
    ]
    out = evaluate(folder, binary_policy(gates=gates))
    assert statuses(out)["regression"] == "INCONCLUSIVE" and out.decision.verdict == "HOLD"
    assert "no baseline" in out.results[1].reason
    assert (
        evaluate(folder, binary_policy(gates=gates, on={"missing_baseline": "skip"})).decision.verdict
        == "PROMOTE"
    )
    assert (
        evaluate(folder, binary_policy(gates=gates, on={"missing_baseline": "reject"})).decision.verdict
        == "REJECT"
    )


def test_expected_group_missing_is_reported(binary_case):
    folder, _ = binary_case
    gate = {
        "type": "fairness",
        "features": ["sex"],
        "expected_groups": {"sex": ["F", "M", "X"]},
        "metrics": [{"metric": "demographic_parity_ratio", "op": ">=", "value": 0.1}],
    }
    out = evaluate(folder, binary_policy(gates=[gate]))
    missing = [m for m in out.record["gates"][0]["metrics"] if m["metric"] == "group_present"]
    assert [m["scope"] for m in missing] == ["sex=X"] and out.decision.verdict == "HOLD"
    out = evaluate(folder, binary_policy(gates=[gate], on={"missing_group": "fail"}))
    assert out.decision.verdict == "REJECT"


def test_undefined_metric_fails_closed(binary_case):
    folder, frame = binary_case
    write_parquet(folder / "eval.parquet", dict(frame, cand_pred=np.full(len(frame["label"]), "no")))
    gates = [{"type": "accuracy", "metrics": [{"metric": "precision", "op": ">=", "value": 0.1}]}]
    out = evaluate(folder, binary_policy(gates=gates))
    assert statuses(out)["accuracy"] == "ERROR" and out.decision.verdict == "REJECT"
    assert out.record["gates"][0]["metrics"][0]["value"] is None
    assert evaluate(folder, binary_policy(gates=gates, on={"error": "hold"})).decision.verdict == "HOLD"


def test_slices_are_checked_and_small_slices_flagged(binary_case):
    folder, _ = binary_case
    pol = binary_policy(
        gates=[
            {
                "type": "accuracy",
                "slices": True,
                "metrics": [{"metric": "accuracy", "op": ">=", "value": 0.6}],
            }
        ],
        settings={"min_group_size": 300},
        on={"insufficient_group": "warn"},
    )
    pol["columns"]["slices"] = ["race"]
    out = evaluate(folder, pol)
    scopes = {m["scope"]: m for m in out.record["gates"][0]["metrics"]}
    assert set(scopes) == {"overall", "race=a", "race=b", "race=c"}
    assert scopes["race=c"]["status"] == "WARN" and "insufficient evidence" in scopes["race=c"]["note"]
    assert scopes["race=a"]["status"] == "PASS"


def test_ci_context_from_github_environment(binary_case, monkeypatch, tmp_path):
    folder, _ = binary_case
    event = tmp_path / "event.json"
    event.write_text(
        json.dumps({"pull_request": {"number": 42, "head": {"sha": "a" * 40}, "user": {"login": "carol"}}})
    )
    for k, v in {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "acme/models",
        "GITHUB_SHA": "b" * 40,
        "GITHUB_RUN_ID": "7",
        "GITHUB_SERVER_URL": "https://github.example.com",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_REF": "refs/pull/42/merge",
        "GITHUB_ACTOR": "ci-bot",
    }.items():
        monkeypatch.setenv(k, v)
    ci = evaluate(folder, binary_policy()).record["ci"]
    assert ci == {
        "platform": "github",
        "repository": "acme/models",
        "commit": "a" * 40,
        "ref": "refs/pull/42/merge",
        "pull_request": 42,
        "run_url": "https://github.example.com/acme/models/actions/runs/7",
        "actor": "ci-bot",
        "author": "carol",  # the pull request's author, whoever re-ran the job
    }


def test_reports_marker_cap_junit_html(binary_case):
    folder, _ = binary_case
    out = evaluate(folder, binary_policy(gates=FULL_GATES))
    md = out.files["markdown"].read_text()
    assert md.startswith(markdown.MARKER) and "```mermaid" in md and "<details>" in md
    big = copy.deepcopy(out.record)
    big["gates"][0]["metrics"] *= 400  # a record far over GitHub's limit
    capped = markdown.render(big)
    assert len(capped) <= markdown.LIMIT and "cut to fit" in capped and capped.startswith(markdown.MARKER)
    suite = ET.parse(out.files["junit"]).getroot().find("testsuite")
    assert suite is not None and int(suite.get("tests", "0")) == len(FULL_GATES)
    assert [c.get("name") for c in suite.findall("testcase")] == [g["name"] for g in out.record["gates"]]
    html = out.files["html"].read_text()
    assert (
        "<svg" in html
        and "ROC curve" in html
        and "<script" not in html
        and "http" not in html.lower().replace("https://mlops-gates.dev", "")
    )


def test_failing_gate_lists_failing_metrics_in_junit(tmp_path):
    write_parquet(tmp_path / "eval.parquet", binary_frame(flip_noise=0.15))
    out = evaluate(tmp_path, binary_policy(gates=FULL_GATES[3:]))
    failure = ET.parse(out.files["junit"]).getroot().find("testsuite/testcase/failure")
    assert failure is not None and "negative_flip_rate [overall]" in (failure.text or "")


def test_multiclass_end_to_end_with_paired_auc(tmp_path):
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    X, y = load_wine(return_X_y=True)
    idx = np.random.default_rng(1).permutation(len(y))
    tr, te = idx[:90], idx[90:]
    cand = LogisticRegression(max_iter=5000).fit(X[tr], y[tr]).predict_proba(X[te])
    base = LogisticRegression(max_iter=5000).fit(X[tr][:, :3], y[tr]).predict_proba(X[te][:, :3])
    names = np.array(["c0", "c1", "c2"])
    frame = {"label": names[y[te]], "cp": names[cand.argmax(1)], "bp": names[base.argmax(1)]}
    for k in range(3):
        frame[f"c{k}"], frame[f"b{k}"] = cand[:, k], base[:, k]
    write_parquet(tmp_path / "eval.parquet", frame)
    policy = {
        "version": 1,
        "task": "multiclass",
        "classes": names.tolist(),
        "data": {"eval": {"path": "eval.parquet"}},
        "columns": {
            "label": "label",
            "candidate": {"prediction": "cp", "score": ["c0", "c1", "c2"]},
            "baseline": {"prediction": "bp", "score": ["b0", "b1", "b2"]},
        },
        "settings": {"bootstrap": {"replicates": 400}},
        "gates": [
            {
                "type": "accuracy",
                "metrics": [
                    {"metric": "roc_auc", "op": ">=", "value": 0.8},
                    {"metric": "f1", "op": ">=", "value": 0.5},
                ],
            },
            {
                "type": "regression",
                "metrics": [
                    {"metric": "roc_auc", "margin": {"absolute": 0.05}},
                    {"metric": "accuracy", "margin": {"absolute": 0.05}},
                ],
                "negative_flips": {"max_rate": 0.2},
            },
        ],
    }
    out = evaluate(tmp_path, policy)
    jsonschema.Draft202012Validator(record_schema()).validate(out.record)
    diff = next(m for m in out.record["gates"][1]["metrics"] if m["metric"].startswith("roc_auc"))
    expected = roc_auc_score(y[te], cand, multi_class="ovr") - roc_auc_score(y[te], base, multi_class="ovr")
    assert (
        diff["value"] == pytest.approx(expected, abs=5e-3) and diff["ci"][0] <= diff["value"] <= diff["ci"][1]
    )


def test_ci_context_from_gitlab_environment(binary_case, monkeypatch):
    folder, _ = binary_case
    for k, v in {
        "GITLAB_CI": "true",
        "CI_PROJECT_PATH": "grp/models",
        "CI_COMMIT_SHA": "c" * 40,
        "CI_COMMIT_REF_NAME": "feat",
        "CI_MERGE_REQUEST_IID": "9",
        "CI_JOB_URL": "https://gitlab.example.com/grp/models/-/jobs/5",
        "GITLAB_USER_LOGIN": "dave",
    }.items():
        monkeypatch.setenv(k, v)
    ci = evaluate(folder, binary_policy()).record["ci"]
    assert ci == {
        "platform": "gitlab",
        "repository": "grp/models",
        "commit": "c" * 40,
        "ref": "feat",
        "merge_request": 9,
        "run_url": "https://gitlab.example.com/grp/models/-/jobs/5",
        "actor": "dave",
        "author": "dave",
    }


def test_gate_results_round_trip_through_json(binary_case):
    from mlops_gates.gates.base import GateResult

    folder, _ = binary_case
    out = evaluate(folder, binary_policy(gates=FULL_GATES))
    for result, data in zip(out.results, out.record["gates"], strict=True):
        again = GateResult.from_json(json.loads(json.dumps(data)))
        assert again.to_json() == data
        assert again.status == result.status and len(again.metrics) == len(result.metrics)


def test_multiclass_fairness_on_per_group_accuracy(tmp_path):
    from fairlearn.metrics import MetricFrame
    from sklearn.metrics import accuracy_score

    rng = np.random.default_rng(4)
    n = 3000
    group = rng.choice(["u", "v", "w"], n)
    y = rng.choice(["a", "b", "c"], n)
    right = rng.random(n) < np.where(group == "w", 0.6, 0.8)
    pred = np.where(right, y, rng.choice(["a", "b", "c"], n))
    write_parquet(tmp_path / "eval.parquet", {"label": y, "pred": pred, "g": group})
    policy = {
        "version": 1,
        "task": "multiclass",
        "classes": ["a", "b", "c"],
        "data": {"eval": {"path": "eval.parquet"}},
        "columns": {"label": "label", "candidate": {"prediction": "pred"}, "sensitive": ["g"]},
        "settings": {"bootstrap": {"replicates": 400}},
        "gates": [
            {"type": "fairness", "metrics": [{"metric": "accuracy_difference", "op": "<=", "value": 0.05}]}
        ],
    }
    out = evaluate(tmp_path, policy)
    m = out.record["gates"][0]["metrics"][0]
    expected = MetricFrame(
        metrics=accuracy_score, y_true=y, y_pred=pred, sensitive_features=group
    ).difference()
    assert m["value"] == pytest.approx(expected, abs=1e-12) and m["status"] == "FAIL"
    bad = binary_policy(
        gates=[{"type": "fairness", "metrics": [{"metric": "tpr_difference", "op": "<=", "value": 0.1}]}]
    )
    bad.update(task="multiclass", classes=["a", "b", "c"])
    bad.pop("positive_label")
    with pytest.raises(PolicyError, match="does not apply to a multiclass task"):
        P.load(write_policy(tmp_path / "bad.yml", bad))
