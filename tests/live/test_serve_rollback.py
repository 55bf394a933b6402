"""`serve --rollback MODEL@ENV`: the one endpoint that changes anything. POST /v1/rollback needs the bearer
token (none, or a wrong one, is refused); with it, a ROLLBACK verdict rolls production back through the
registry's checks and audit log; any other verdict changes nothing."""

from __future__ import annotations

import requests
import yaml

from mlops_gates import policy as P
from mlops_gates.promotion.promote import state
from tests.live.test_analyze import rollout
from tests.promotion.release import HOUR, Release

TOKEN = "serve-token-0123456789"


def test_rolling_back_needs_the_token_and_a_rollback_verdict(tmp_path, monkeypatch, models, serve):
    r = Release(tmp_path, monkeypatch)
    doc = yaml.safe_load(r.policy.read_text())
    doc["promotion"]["analysis"] = {
        "min_rows": 200,
        "metrics": [{"metric": "accuracy", "margin": {"absolute": 0.02}}],
    }
    r.policy.write_text(yaml.safe_dump(doc, sort_keys=False))
    r.pol = P.load(r.policy)
    a, b = r.model("a", ["x1", "x2"]), r.model("b", ["x1", "x2", "x3"])
    for env, after in (("staging", HOUR), ("canary", 2 * HOUR), ("production", 4 * HOUR)):
        r.promote(a, env, after)
    for env, after in (("staging", 5 * HOUR), ("canary", 6 * HOUR)):
        r.promote(b, env, after)
    r.promote(b, "production", 7 * HOUR, traffic=50)
    rollout(tmp_path, models, "v2", windows=1, per_window=1_000, share=0.5)  # too few rows to decide yet
    url = serve(
        None, "--rollback", "churn@production", "--actor", "alice", env={"MLOPS_GATES_SERVE_TOKEN": TOKEN}
    )
    ask = {"canary": "v2", "stable": "v1", "split": 0.5}

    assert requests.post(f"{url}/v1/rollback", params=ask, timeout=30).status_code == 401
    wrong = requests.post(
        f"{url}/v1/rollback", params=ask, headers={"Authorization": "Bearer nope"}, timeout=30
    )
    assert wrong.status_code == 401 and TOKEN not in wrong.text
    auth = {"Authorization": f"Bearer {TOKEN}"}
    early = requests.post(f"{url}/v1/rollback", params=ask, headers=auth, timeout=60)
    assert early.status_code == 409 and early.json()["verdict"] == "CONTINUE"  # nothing to act on
    assert state(r.reg)[1][(r.name, "production")].canary is not None

    bad = {"canary": "v2-bad", "stable": "v1", "split": 0.5}
    rollout(tmp_path, models, "v2-bad", windows=2, per_window=10_000, share=0.5, start=1)
    done = requests.post(f"{url}/v1/rollback", params=bad, headers=auth, timeout=60)
    assert done.status_code == 200 and done.json()["verdict"] == "ROLLBACK", done.text
    assert done.json()["response"]["rollback"]["digest"] == a
    pointer = state(r.reg)[1][(r.name, "production")]
    assert pointer.digest == a and pointer.canary is None
    assert (
        requests.get(f"{url}/v1/analysis", params=bad, timeout=60).status_code == 200
    )  # reads need no token


def test_rolling_back_is_off_without_the_option_and_refused_without_a_token(
    tmp_path, monkeypatch, serve, capsys
):
    from tests.conftest import cli_main

    url = serve()
    off = requests.post(f"{url}/v1/rollback", params={"canary": "v2", "stable": "v1"}, timeout=30)
    assert off.status_code == 403 and "rolling back is off" in off.json()["detail"]
    monkeypatch.delenv("MLOPS_GATES_SERVE_TOKEN", raising=False)
    code = cli_main(
        monkeypatch,
        "serve",
        "--policy",
        str(tmp_path / "gates.yml"),
        "--requests",
        str(tmp_path),
        "--rollback",
        "churn@production",
    )
    assert code == 2 and "MLOPS_GATES_SERVE_TOKEN" in capsys.readouterr().err
