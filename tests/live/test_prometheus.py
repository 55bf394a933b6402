"""A real Prometheus server (Debian's `prometheus`, started here on loopback) scrapes `serve`'s /metrics (the
verdict and the checks' bounds arrive with their model, environment and version labels, queryable in PromQL)
and a model server's own metrics, which `analyze` reads as system guardrails."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest
import requests

from tests.live.conftest import free_port
from tests.live.test_analyze import rollout


def prometheus() -> str:
    found = shutil.which("prometheus")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("prometheus is not installed: make test installs Debian's prometheus (as root)")
    pytest.skip("prometheus is not installed (apt-get install prometheus)")


def query(url: str, promql: str) -> list[dict]:
    answer = requests.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def test_prometheus_scrapes_the_verdict_and_the_bounds(tmp_path, models, serve):
    prometheus()  # skip early where it is not installed
    rollout(tmp_path, models, "v2-bad", windows=2, per_window=10_000)
    url = serve()
    target = url.removeprefix("http://")
    assert requests.get(f"{url}/v1/analysis", params={"canary": "v2-bad", "stable": "v1"}, timeout=60).ok
    server, prom = start_prometheus(tmp_path, [target])
    try:
        verdict: list[dict] = []
        for _ in range(120):
            if _ready(prom):
                verdict = query(prom, 'mlops_gates_live_verdict{verdict="ROLLBACK"} == 1')
            if verdict:
                break
            if server.poll() is not None:
                pytest.fail(server.stderr.read())
            time.sleep(0.5)
        assert verdict, "Prometheus never saw the verdict"
        labels = verdict[0]["metric"]
        assert labels["model"] == "churn" and labels["environment"] == "production"
        assert labels["canary"] == "v2-bad" and labels["stable"] == "v1" and labels["job"] == "models"
        upper = query(prom, 'mlops_gates_live_check{check="accuracy", value="upper"}')
        limit = query(prom, 'mlops_gates_live_check{check="accuracy", value="limit"}')
        assert (
            float(upper[0]["value"][1]) < float(limit[0]["value"][1]) == -0.02
        )  # worse than the margin for sure
        failing = query(prom, "sum by (check) (mlops_gates_live_check_failing) > 0")
        assert {r["metric"]["check"] for r in failing} == {"accuracy"}
    finally:
        server.terminate()
        server.wait(timeout=20)


class ModelServerMetrics:
    """A model server's own metrics on loopback (prometheus_client): requests and errors per version."""

    def __init__(self, served: dict[str, tuple[int, int]]) -> None:
        from prometheus_client import CollectorRegistry, Counter, start_http_server

        registry = CollectorRegistry()
        requests_ = Counter("model_requests", "requests served", ["version"], registry=registry)
        errors = Counter("model_errors", "requests failed", ["version"], registry=registry)
        for version, (n, failed) in served.items():
            requests_.labels(version=version).inc(n)
            errors.labels(version=version).inc(failed)
        self.port = free_port()
        self.server, self.thread = start_http_server(self.port, addr="127.0.0.1", registry=registry)

    def close(self) -> None:
        self.server.shutdown()


def start_prometheus(tmp_path, targets: list[str]) -> tuple[subprocess.Popen, str]:
    config = tmp_path / "prometheus.yml"
    listed = ", ".join(f"'{t}'" for t in targets)
    config.write_text(
        f"global: {{scrape_interval: 1s}}\nscrape_configs: [{{job_name: models, static_configs: [{{targets: [{listed}]}}]}}]\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            prometheus(),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, f"http://127.0.0.1:{port}"


def test_analyze_reads_system_guardrails_from_prometheus_and_holds_when_it_cannot(
    tmp_path, models, monkeypatch
):
    from tests.conftest import cli_main, write_policy
    from tests.live.test_analyze import analysis_policy

    served = ModelServerMetrics({"v1": (10_000, 10), "v2": (2_000, 100)})  # the canary fails 5% of requests
    proc, prom = start_prometheus(tmp_path, [f"127.0.0.1:{served.port}"])
    rollout(tmp_path, models, "v2", windows=1, per_window=2_000)
    ratio = 'sum(model_errors_total{version="$canary"}) / sum(model_requests_total{version="$canary"})'
    policy = analysis_policy(
        prometheus={"url": prom, "checks": [{"name": "error rate (Prometheus)", "query": ratio, "max": 0.01}]}
    )
    write_policy(tmp_path / "gates.yml", policy)

    def analyze(*extra: str) -> tuple[int, dict]:
        out = tmp_path / "analysis.json"
        out.unlink(missing_ok=True)
        code = cli_main(
            monkeypatch,
            "analyze",
            "--policy",
            str(tmp_path / "gates.yml"),
            "--requests",
            str(tmp_path / "logs"),
            "--labels",
            str(tmp_path / "labels"),
            "--out",
            str(out),
            *extra,
        )
        return code, json.loads(out.read_text()) if out.exists() else {}

    try:
        for _ in range(120):  # until Prometheus is ready and has scraped the model server once
            if _ready(prom) and query(prom, 'model_requests_total{version="v2"}'):
                break
            time.sleep(0.5)
        code, record = analyze("--canary", "v2", "--stable", "v1")
        check = next(c for c in record["checks"] if c["name"] == "error rate (Prometheus)")
        assert check["status"] == "fail" and abs(check["estimate"] - 0.05) < 1e-9, check
        assert record["verdict"] == "ROLLBACK"
        code, record = analyze("--canary", 'v2"} or vector(0) or {x="', "--stable", "v1")
        assert code == 2 and record == {}  # a version that would rewrite the query is refused
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        served.close()
    code, record = analyze("--canary", "v2", "--stable", "v1")  # Prometheus is down
    check = next(c for c in record["checks"] if c["name"] == "error rate (Prometheus)")
    assert check["status"] == "cannot judge" and "Prometheus did not answer" in check["detail"]
    assert record["verdict"] == "HOLD" and code == 1


def _ready(prom: str) -> bool:
    """Prometheus answers 503 while it starts: only a 200 means it can be queried."""
    try:
        return requests.get(f"{prom}/-/ready", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False
