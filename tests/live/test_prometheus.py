"""A real Prometheus server (Debian's `prometheus`, started here on loopback) scrapes `serve`'s /metrics: the
verdict and the checks' bounds arrive with their model, environment and version labels, queryable in PromQL."""

from __future__ import annotations

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
    binary = prometheus()
    rollout(tmp_path, models, "v2-bad", windows=2, per_window=10_000)
    url = serve()
    target = url.removeprefix("http://")
    assert requests.get(f"{url}/v1/analysis", params={"canary": "v2-bad", "stable": "v1"}, timeout=60).ok
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        f"scrape_configs: [{{job_name: mlops-gates, static_configs: [{{targets: ['{target}']}}]}}]\n"
    )
    port = free_port()
    server = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    prom = f"http://127.0.0.1:{port}"
    try:
        verdict: list[dict] = []
        for _ in range(120):
            try:
                verdict = query(prom, 'mlops_gates_live_verdict{verdict="ROLLBACK"} == 1')
            except requests.ConnectionError:
                verdict = []
            if verdict:
                break
            if server.poll() is not None:
                pytest.fail(server.stderr.read())
            time.sleep(0.5)
        assert verdict, "Prometheus never saw the verdict"
        labels = verdict[0]["metric"]
        assert labels["model"] == "churn" and labels["environment"] == "production"
        assert labels["canary"] == "v2-bad" and labels["stable"] == "v1" and labels["job"] == "mlops-gates"
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
