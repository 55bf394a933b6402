"""The live analysis' tests share real models, trained once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import requests
from sklearn.linear_model import LogisticRegression

from tests.conftest import write_policy


@pytest.fixture(scope="module")
def models():
    """Stable: logistic regression on every feature. Good canary: the same on fresh data. Bad canary: one
    that lost its strongest feature (a broken feature pipeline), several points less accurate."""
    rng = np.random.default_rng(0)

    def data(n):
        x = rng.normal(size=(n, 4))
        y = (x @ [2.0, 1.0, 0.5, 0.0] + rng.normal(size=n) > 0).astype(int)
        return x, y

    x, y = data(20_000)
    stable = LogisticRegression().fit(x, y)
    good = LogisticRegression().fit(*data(20_000))
    broken = x.copy()
    broken[:, 0] = 0.0
    bad = LogisticRegression().fit(broken, y)
    return data, {"v1": stable, "v2": good, "v2-bad": bad}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def serve(tmp_path):
    """Start `mlops-gates serve` over tmp_path/logs and tmp_path/labels; yields its base URL."""
    procs = []

    def start(policy: dict | None = None, *extra: str, env: dict[str, str] | None = None) -> str:
        """Start it; a policy already at tmp_path/gates.yml is kept when `policy` is None and `extra` given."""
        from tests.live.test_analyze import analysis_policy

        latency = {"latency": {"quantile": 0.99, "max_ms": 150}}
        if policy is not None or not extra:
            write_policy(tmp_path / "gates.yml", policy or analysis_policy(guardrails=latency))
        port = free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlops_gates",
                "serve",
                "--policy",
                str(tmp_path / "gates.yml"),
                "--requests",
                str(tmp_path / "logs"),
                "--labels",
                str(tmp_path / "labels"),
                "--port",
                str(port),
                "--model",
                "churn",
                "--env",
                "production",
                *extra,
            ],
            env={**os.environ, **(env or {})},
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                    return url
            except requests.ConnectionError:
                time.sleep(0.05)
            if proc.poll() is not None:
                pytest.fail(proc.stderr.read())
        pytest.fail("serve did not start")

    yield start
    for p in procs:
        p.terminate()
        p.wait(timeout=10)
