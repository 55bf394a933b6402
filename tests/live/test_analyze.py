"""`mlops-gates analyze`: a canary against stable on the same live traffic. Two real models (trained here)
serve simulated requests routed by a split; request logs go to JSON Lines and Parquet windows and labels arrive
in files of their own, as a serving layer and a labelling job would write them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import binary_policy, cli_main, write_parquet, write_policy

MARGIN = 0.02


def analysis_policy(**analysis) -> dict:
    block = {
        "horizon": 20_000,
        "min_rows": 200,
        "split": 0.2,
        "metrics": [{"metric": "accuracy", "margin": {"absolute": MARGIN}}],
        **analysis,
    }
    return binary_policy(
        promotion={"environments": [{"name": "production", "signers": [{"key": "k.pub"}]}], "analysis": block}
    )


def serve(models, canary: str, n: int, share: float, seed: int, *, slow: float = 0.0, failing: float = 0.0):
    """n requests routed to the canary with chance `share`, else to v1; returns (requests, labels) columns."""
    data, fitted = models
    rng = np.random.default_rng(seed)
    x, y = data(n)
    to_canary = rng.random(n) < share
    version = np.where(to_canary, canary, "v1")
    score = np.empty(n)
    group = np.where(rng.random(n) < 0.5, "a", "b")
    for name in ("v1", canary):
        rows = version == name
        feats = x[rows].copy()
        if name == "v2-bad":
            feats[:, 0] = 0.0
        score[rows] = fitted["v2" if name == "v2-unfair" else name].predict_proba(feats)[:, 1]
    if canary == "v2-unfair":  # the canary holds group b back: its scores shrink there
        held = (version == canary) & (group == "b")
        score[held] *= 0.6
    latency = rng.gamma(4.0, 10.0, n) + np.where(to_canary, slow, 0.0)
    error = rng.random(n) < np.where(to_canary, failing, 0.001)
    ids = np.array([f"r{seed}-{i}" for i in range(n)])
    requests = {
        "request_id": ids,
        "version": version,
        "prediction": np.where(score >= 0.5, "yes", "no"),
        "score": score,
        "latency_ms": latency,
        "error": error,
        "group": group,
    }
    labels = {"request_id": ids, "label": np.where(y == 1, "yes", "no")}
    return requests, labels


def write_jsonl(path: Path, cols: dict) -> Path:
    keys = list(cols)
    with path.open("w") as f:
        for row in zip(*(cols[k] for k in keys), strict=True):
            f.write(
                json.dumps(
                    {k: (v.item() if hasattr(v, "item") else v) for k, v in zip(keys, row, strict=True)}
                )
                + "\n"
            )
    return path


def rollout(
    tmp_path: Path,
    models,
    canary: str,
    windows: int,
    per_window: int,
    share: float = 0.2,
    start: int = 0,
    **kw,
):
    """Windows of logs as a shipper writes them (JSON Lines and Parquet), labels in their own files."""
    (tmp_path / "logs").mkdir(exist_ok=True)
    (tmp_path / "labels").mkdir(exist_ok=True)
    for w in range(start, start + windows):
        req, lab = serve(models, canary, per_window, share, seed=w, **kw)
        if w % 2:
            write_parquet(tmp_path / "logs" / f"w{w:03d}.parquet", req)
        else:
            write_jsonl(tmp_path / "logs" / f"w{w:03d}.jsonl", req)
        write_jsonl(tmp_path / "labels" / f"w{w:03d}.jsonl", lab)


def analyze(
    monkeypatch, tmp_path: Path, canary: str, *extra: str, policy: dict | None = None
) -> tuple[int, dict]:
    write_policy(tmp_path / "gates.yml", policy or analysis_policy())
    out = tmp_path / "analysis.json"
    code = cli_main(
        monkeypatch,
        "analyze",
        "--policy",
        str(tmp_path / "gates.yml"),
        "--canary",
        canary,
        "--stable",
        "v1",
        "--requests",
        str(tmp_path / "logs"),
        "--out",
        str(out),
        *extra,
    )
    return code, (json.loads(out.read_text()) if out.exists() else {})


def checks(record: dict) -> dict:
    return {c["name"]: c for c in record["checks"]}


def test_a_good_canary_is_promoted_and_a_broken_one_rolled_back(monkeypatch, tmp_path, models):
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir(), bad.mkdir()
    rollout(good, models, "v2", windows=6, per_window=10_000)
    code, record = analyze(monkeypatch, good, "v2", "--labels", str(good / "labels"))
    assert code == 0 and record["verdict"] == "PROMOTE", record
    acc = checks(record)["accuracy"]
    assert acc["lower"] > -MARGIN and acc["lower"] < acc["estimate"] < acc["upper"]
    assert record["rows"]["v2"]["labelled"] == record["rows"]["v2"]["requests"] > 10_000
    rollout(bad, models, "v2-bad", windows=2, per_window=10_000)
    code, record = analyze(monkeypatch, bad, "v2-bad", "--labels", str(bad / "labels"))
    assert code == 1 and record["verdict"] == "ROLLBACK", record
    assert checks(record)["accuracy"]["status"] == "fail" and checks(record)["accuracy"]["upper"] < -MARGIN


def test_early_looks_continue_rather_than_decide(monkeypatch, tmp_path, models):
    rollout(tmp_path, models, "v2", windows=1, per_window=3_000)
    code, record = analyze(monkeypatch, tmp_path, "v2", "--labels", str(tmp_path / "labels"))
    assert code == 1 and record["verdict"] == "CONTINUE", record
    assert checks(record)["accuracy"]["status"] == "pending"


def test_a_broken_traffic_split_rolls_back_whatever_the_metrics_say(monkeypatch, tmp_path, models):
    rollout(tmp_path, models, "v2", windows=3, per_window=10_000, share=0.17)  # the router was told 20%
    code, record = analyze(monkeypatch, tmp_path, "v2", "--labels", str(tmp_path / "labels"))
    assert code == 1 and record["verdict"] == "ROLLBACK"
    assert checks(record)["traffic split"]["status"] == "fail"
    code, record = analyze(
        monkeypatch, tmp_path, "v2", "--labels", str(tmp_path / "labels"), "--split", "0.17"
    )
    assert checks(record)["traffic split"]["status"] == "pass"


def test_guardrails_roll_back_a_slow_or_failing_canary(monkeypatch, tmp_path, models):
    policy = analysis_policy(
        metrics=[{"metric": "accuracy", "margin": {"absolute": 0.5}}],
        guardrails={
            "latency": {"quantile": 0.99, "max_ms": 150},
            "error_rate": {"margin": {"absolute": 0.005}},
            "prediction_psi": {"max": 0.25},
        },
    )
    slow = tmp_path / "slow"
    slow.mkdir()
    rollout(slow, models, "v2", windows=2, per_window=10_000, slow=80.0)
    code, record = analyze(monkeypatch, slow, "v2", "--labels", str(slow / "labels"), policy=policy)
    assert record["verdict"] == "ROLLBACK" and checks(record)["latency p99"]["status"] == "fail", record
    assert checks(record)["error rate"]["status"] != "fail"
    failing = tmp_path / "failing"
    failing.mkdir()
    rollout(failing, models, "v2", windows=2, per_window=10_000, failing=0.03)
    code, record = analyze(monkeypatch, failing, "v2", "--labels", str(failing / "labels"), policy=policy)
    assert record["verdict"] == "ROLLBACK" and checks(record)["error rate"]["status"] == "fail", record
    assert (
        checks(record)["latency p99"]["status"] == "pass"
        and checks(record)["prediction shift"]["status"] == "pass"
    )


def test_without_traffic_or_labels_it_cannot_judge_and_holds(monkeypatch, tmp_path, models):
    rollout(tmp_path, models, "v2", windows=1, per_window=5_000)
    code, record = analyze(monkeypatch, tmp_path, "v3")  # no request reached v3
    assert code == 1 and record["verdict"] == "HOLD" and "no traffic reached v3" in record["reasons"][0]
    code, record = analyze(monkeypatch, tmp_path, "v2")  # no labels yet
    assert code == 1 and record["verdict"] == "HOLD"
    assert checks(record)["accuracy"]["status"] == "cannot judge"


def test_bad_logs_are_errors_that_name_the_file(monkeypatch, tmp_path, models, capsys):
    rollout(tmp_path, models, "v2", windows=1, per_window=1_000)
    write_jsonl(tmp_path / "labels" / "again.jsonl", {"request_id": ["r0-1"], "label": ["maybe"]})
    code, _ = analyze(monkeypatch, tmp_path, "v2", "--labels", str(tmp_path / "labels"))
    err = capsys.readouterr().err
    assert code == 2 and "'r0-1' has two different labels" in err
    pq.write_table(pa.table({"request_id": ["x"]}), tmp_path / "logs" / "broken.parquet")
    code, _ = analyze(monkeypatch, tmp_path, "v2")
    err = capsys.readouterr().err
    assert code == 2 and "broken.parquet" in err and "has no version or prediction column" in err
    policy = binary_policy()
    code, _ = analyze(monkeypatch, tmp_path, "v2", policy=policy)
    assert code == 2 and "no promotion.analysis" in capsys.readouterr().err


def test_a_request_shipped_twice_counts_once(monkeypatch, tmp_path, models):
    rollout(tmp_path, models, "v2", windows=1, per_window=2_000)
    (tmp_path / "logs" / "copy.jsonl").write_text((tmp_path / "logs" / "w000.jsonl").read_text())
    code, record = analyze(monkeypatch, tmp_path, "v2", "--labels", str(tmp_path / "labels"))
    assert record["rows"]["v1"]["requests"] + record["rows"]["v2"]["requests"] == 2_000


def test_the_policy_check_refuses_a_live_metric_that_does_not_fit_the_task(tmp_path):
    from mlops_gates.errors import GateError
    from mlops_gates.policy import load

    policy = analysis_policy(
        metrics=[{"metric": "mae", "margin": {"absolute": 1}}], columns={"label": "score"}
    )
    write_policy(tmp_path / "gates.yml", policy)
    with pytest.raises(GateError) as exc:
        load(tmp_path / "gates.yml")
    text = exc.value.render()
    assert "mae does not apply to a binary task" in text and "'score' is already the score column" in text


def test_looking_window_by_window_gives_what_reading_everything_at_once_gives(tmp_path, models):
    """The state kept between looks: windows fed one at a time, labels before or after their requests, a
    window fed twice, give the record a single reading of everything gives."""
    from mlops_gates import policy as P
    from mlops_gates.live.analyze import Settings, feed_labels, feed_requests, judge, new_state
    from mlops_gates.live.logs import files

    rollout(tmp_path, models, "v2", windows=4, per_window=3_000)
    write_policy(
        tmp_path / "gates.yml",
        analysis_policy(
            guardrails={"latency": {"quantile": 0.99, "max_ms": 150}, "prediction_psi": {"max": 0.2}}
        ),
    )
    pol = P.load(tmp_path / "gates.yml")
    s = Settings.of(pol)
    logs, labels = files([tmp_path / "logs"]), files([tmp_path / "labels"])
    once = new_state(pol, s, "v2", "v1")
    for ds in logs:
        feed_requests(once, s, ds, None)
    for ds in labels:
        feed_labels(once, s, ds)
    looked = new_state(pol, s, "v2", "v1")
    feed_labels(looked, s, labels[0])  # the labels of window 0 before its requests
    for k, ds in enumerate(logs):
        feed_requests(looked, s, ds, None)
        feed_requests(looked, s, ds, None)  # shipped twice
        if k:
            feed_labels(looked, s, labels[k])
        judge(looked, s)  # a look, which must change nothing
    feed_labels(looked, s, labels[1])  # the same labels again
    a, b = judge(once, s).record(), judge(looked, s).record()
    assert a == b
    assert a["rows"]["v2"]["labelled"] + a["rows"]["v1"]["labelled"] == 12_000


def test_a_canary_that_widens_the_gap_between_groups_is_rolled_back(monkeypatch, tmp_path, models, capsys):
    fairness = [
        {"column": "group", "rate": "selection_rate", "margin": {"absolute": 0.05}},
        {"column": "group", "rate": "tpr", "margin": {"absolute": 0.05}},
    ]
    policy = analysis_policy(metrics=[{"metric": "accuracy", "margin": {"absolute": 0.5}}], fairness=fairness)
    fair, unfair = tmp_path / "fair", tmp_path / "unfair"
    fair.mkdir(), unfair.mkdir()
    rollout(fair, models, "v2", windows=4, per_window=10_000, share=0.5)
    code, record = analyze(
        monkeypatch, fair, "v2", "--labels", str(fair / "labels"), "--split", "0.5", policy=policy
    )
    gaps = [c for c in record["checks"] if "gap across group" in c["name"]]
    assert [c["status"] for c in gaps] == ["pass", "pass"] and record["verdict"] == "PROMOTE", record
    rollout(unfair, models, "v2-unfair", windows=2, per_window=10_000, share=0.5)
    code, record = analyze(
        monkeypatch, unfair, "v2-unfair", "--labels", str(unfair / "labels"), "--split", "0.5", policy=policy
    )
    gaps = {c["name"]: c for c in record["checks"] if "gap across group" in c["name"]}
    assert gaps["tpr gap across group"]["status"] == "fail" and record["verdict"] == "ROLLBACK", record
    assert gaps["tpr gap across group"]["lower"] > 0.05  # surely wider than stable's by more than the margin
    assert gaps["selection_rate gap across group"]["estimate"] > 0.1
    pq.write_table(
        pa.table({"request_id": ["x"], "version": ["v1"], "prediction": ["yes"]}),
        unfair / "logs" / "nogroup.parquet",
    )
    code, _ = analyze(monkeypatch, unfair, "v2-unfair", policy=policy)
    assert code == 2 and "nogroup.parquet" in capsys.readouterr().err
