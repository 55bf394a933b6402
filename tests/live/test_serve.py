"""`mlops-gates serve` started as a process on loopback and called as Argo Rollouts' web metric provider,
Flagger's webhooks and Prometheus call it: the JSON Argo reads, the status codes Flagger acts on, the metrics
Prometheus scrapes; new windows read as they land; bad input answered, never a pass."""

from __future__ import annotations

import json

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.live.test_analyze import rollout


def flagger(url: str, hook: str, **metadata: str) -> requests.Response:
    payload = {"name": "churn", "namespace": "ml", "phase": "Progressing", "metadata": metadata}
    return requests.post(f"{url}/flagger/{hook}", json=payload, timeout=30)


def test_argo_and_flagger_see_the_verdict_as_they_expect(tmp_path, models, serve):
    rollout(tmp_path, models, "v2", windows=1, per_window=2_000)
    url = serve()
    assert requests.get(f"{url}/readyz", timeout=5).status_code == 200
    early = requests.get(f"{url}/v1/analysis", params={"canary": "v2", "stable": "v1"}, timeout=30).json()
    assert (
        early["verdict"] == "CONTINUE"
    )  # what Argo's jsonPath {$.verdict} reads: neither success nor failure
    assert flagger(url, "rollout", canary="v2", stable="v1").status_code == 200  # go on, more traffic
    assert flagger(url, "confirm-promotion", canary="v2", stable="v1").status_code == 403  # not yet
    assert flagger(url, "rollback", canary="v2", stable="v1").status_code == 403  # no reason to
    rollout(tmp_path, models, "v2", windows=5, per_window=10_000, start=1)  # windows land while it runs
    later = requests.get(f"{url}/v1/analysis", params={"canary": "v2", "stable": "v1"}, timeout=60).json()
    assert later["rows"]["v2"]["requests"] > early["rows"]["v2"]["requests"]
    assert later["verdict"] == "PROMOTE", later
    assert flagger(url, "confirm-promotion", canary="v2", stable="v1").status_code == 200
    scraped = {
        f.name: f for f in text_string_to_metric_families(requests.get(f"{url}/metrics", timeout=5).text)
    }
    verdict = {s.labels["verdict"]: s.value for s in scraped["mlops_gates_live_verdict"].samples}
    assert verdict == {"PROMOTE": 1.0, "CONTINUE": 0.0, "ROLLBACK": 0.0, "HOLD": 0.0}
    labels = scraped["mlops_gates_live_verdict"].samples[0].labels
    assert labels["model"] == "churn" and labels["environment"] == "production" and labels["canary"] == "v2"
    bounds = {
        s.labels["value"]: s.value
        for s in scraped["mlops_gates_live_check"].samples
        if s.labels["check"] == "accuracy"
    }
    assert bounds["lower"] < bounds["estimate"] < bounds["upper"] and bounds["limit"] == -0.02
    schema = requests.get(f"{url}/openapi.json", timeout=5).json()
    assert "/v1/analysis" in schema["paths"] and "/flagger/{hook}" in schema["paths"]


def test_a_broken_canary_is_rolled_back_through_either_controller(tmp_path, models, serve):
    rollout(tmp_path, models, "v2-bad", windows=2, per_window=10_000)
    url = serve()
    record = requests.get(
        f"{url}/v1/analysis", params={"canary": "v2-bad", "stable": "v1"}, timeout=60
    ).json()
    assert record["verdict"] == "ROLLBACK"
    assert (
        flagger(url, "rollback", canary="v2-bad", stable="v1").status_code == 200
    )  # Flagger fails the canary
    assert flagger(url, "rollout", canary="v2-bad", stable="v1").status_code == 403
    text = requests.get(f"{url}/metrics", timeout=5).text
    assert 'mlops_gates_live_check_failing{canary="v2-bad",check="accuracy"' in text.replace(
        'environment="production",', ""
    ).replace('model="churn",', "")


def test_bad_requests_and_missing_logs_are_answered_never_passed(tmp_path, models, serve):
    url = serve()
    ready = requests.get(f"{url}/readyz", timeout=5)
    assert ready.status_code == 503 and "no logs at" in ready.json()["reason"]
    assert flagger(url, "confirm-rollout", canary="v2", stable="v1").status_code == 503
    got = requests.get(f"{url}/v1/analysis", params={"canary": "v2", "stable": "v1"}, timeout=5)
    assert got.status_code == 422 and "file not found" in got.json()["detail"]
    assert flagger(url, "rollout", canary="v2", stable="v1").status_code == 422  # not 2xx: Flagger holds
    assert requests.post(f"{url}/flagger/rollout", json={"metadata": {}}, timeout=5).status_code == 400
    assert requests.post(f"{url}/flagger/rollout", data=b"{" * 70_000, timeout=5).status_code == 413
    assert flagger(url, "promote-now", canary="v2", stable="v1").status_code == 404
    assert requests.get(f"{url}/v1/analysis", params={"canary": "v2"}, timeout=5).status_code == 422
    (tmp_path / "logs").mkdir()
    rollout(tmp_path, models, "v2", windows=1, per_window=1_000)
    assert requests.get(f"{url}/readyz", timeout=5).status_code == 200
    json.dumps(requests.get(f"{url}/v1/analysis", params={"canary": "v3", "stable": "v1"}, timeout=30).json())
    held = requests.get(f"{url}/v1/analysis", params={"canary": "v3", "stable": "v1"}, timeout=30).json()
    assert held["verdict"] == "HOLD"
    assert flagger(url, "confirm-promotion", canary="v3", stable="v1").status_code == 403
