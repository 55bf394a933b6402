"""A simulated rollout end to end: real models trained, gated, signed and registered; the canary goes to 10%
of production, where the live analysis promotes it to 50%; there it degrades (a broken feature pipeline), and
`analyze --rollback` says ROLLBACK within a bounded number of windows, moves the registry's pointer back
through the same checks and audit log as `rollback`, and sends one alert to a real Alertmanager, however often
it is asked again."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from mlops_gates import policy as P
from mlops_gates.promotion.promote import state, verify_registry
from tests.conftest import cli_main
from tests.live.test_analyze import rollout
from tests.promotion.release import HOUR, Release
from tests.servers.alerting import alertmanager, alerts_in  # noqa: F401  (a fixture)

WINDOW = 4_000  # requests per window


def analyze(monkeypatch, r: Release, logs, split: str, *extra: str) -> tuple[int, dict]:
    out = r.root / "analysis.json"
    code = cli_main(
        monkeypatch,
        "analyze",
        "--policy",
        str(r.policy),
        "--canary",
        "v2",
        "--stable",
        "v1",
        "--requests",
        str(logs / "logs"),
        "--labels",
        str(logs / "labels"),
        "--split",
        split,
        "--out",
        str(out),
        *extra,
    )
    return code, json.loads(out.read_text())


def test_a_canary_that_degrades_at_step_two_is_rolled_back_with_one_alert(
    tmp_path,
    monkeypatch,
    models,
    alertmanager,  # noqa: F811
):
    root = tmp_path / "repo"
    root.mkdir()
    r = Release(root, monkeypatch)
    doc = yaml.safe_load(r.policy.read_text())
    doc["promotion"]["analysis"] = {
        "horizon": 20_000,
        "min_rows": 200,
        "metrics": [{"metric": "accuracy", "margin": {"absolute": 0.02}}],
    }
    doc["promotion"]["alerts"] = {"alertmanager": alertmanager}
    r.policy.write_text(yaml.safe_dump(doc, sort_keys=False))
    r.pol = P.load(r.policy)
    a, b = r.model("a", ["x1", "x2"]), r.model("b", ["x1", "x2", "x3"])
    for env, after in (("staging", HOUR), ("canary", 2 * HOUR), ("production", 4 * HOUR)):
        r.promote(a, env, after)
    r.promote(b, "staging", 5 * HOUR)
    r.promote(b, "canary", 6 * HOUR)
    r.promote(b, "production", 7 * HOUR, traffic=10)

    step1 = tmp_path / "step1"
    for w in range(12):  # 10%: a sound canary; look after each window until PROMOTE
        step1.mkdir(exist_ok=True)
        rollout(step1, models, "v2", windows=1, per_window=WINDOW, share=0.1, start=w)
        code, record = analyze(monkeypatch, r, step1, "0.1")
        if record["verdict"] != "CONTINUE":
            break
    assert record["verdict"] == "PROMOTE", record
    r.promote(b, "production", 8 * HOUR, traffic=50)

    step2 = tmp_path / "step2"
    looks = 0
    for w in range(100, 110):  # 50%: the canary now runs without its strongest feature
        step2.mkdir(exist_ok=True)
        rollout(step2, models, "v2-bad", windows=1, per_window=WINDOW, share=0.5, start=w)
        _rename_versions(step2)
        looks += 1
        code, record = analyze(
            monkeypatch, r, step2, "0.5", "--rollback", "churn@production", "--actor", "alice"
        )
        if record["verdict"] != "CONTINUE":
            break
    assert record["verdict"] == "ROLLBACK" and code == 1 and looks <= 3, (looks, record)
    assert record["response"]["rollback"]["digest"] == a
    pointer = state(r.reg)[1][(r.name, "production")]
    assert pointer.digest == a and pointer.canary is None
    # asked again, it still says ROLLBACK: nothing left to roll back, and no second alert
    rollout(step2, models, "v2-bad", windows=1, per_window=WINDOW, share=0.5, start=200)
    _rename_versions(step2)
    code, again = analyze(monkeypatch, r, step2, "0.5", "--rollback", "churn@production", "--actor", "alice")
    assert again["verdict"] == "ROLLBACK" and "rollback_refused" in again["response"]
    assert again["response"]["alerts"][0].startswith("not sent again")
    (alert,) = alerts_in(alertmanager)
    assert alert["labels"]["model"] == "churn" and alert["labels"]["environment"] == "production"
    assert alert["annotations"]["action"] == f"rolled production back to {a}"
    steps = [
        (e["action"], e.get("traffic"), e["outcome"]) for e in r.reg.ledger.entries() if e["model"] == r.name
    ]
    assert (
        ("canary", 10, "done") in steps
        and ("canary", 50, "done") in steps
        and ("rollback", None, "done") in steps
    )
    assert verify_registry(r.reg)[1] == []


def _rename_versions(folder) -> None:
    """The broken canary is the same release as the sound one: its requests are logged as v2."""
    for f in (folder / "logs").iterdir():
        if f.suffix == ".jsonl":
            f.write_text(f.read_text().replace('"v2-bad"', '"v2"'))
        else:
            t = pq.read_table(f)
            v = [x.replace("v2-bad", "v2") for x in t.column("version").to_pylist()]
            pq.write_table(t.set_column(t.column_names.index("version"), "version", pa.array(v)), f)
