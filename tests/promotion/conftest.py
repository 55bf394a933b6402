"""The registries the promotion tests walk: a folder, and a real `mlflow server` on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from tests.promotion.release import MLFLOW, ROOT, Release


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory) -> Iterator[str]:
    """A real `mlflow server` on loopback with a SQLite store, from the environment `make test` creates."""
    exe = ROOT / ".cache" / "mlflow" / "bin" / "mlflow"
    if not exe.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{exe} is missing in CI: make test creates it")
        pytest.skip(f"{exe} is missing: make test creates it (pip install mlflow=={MLFLOW} in .cache/mlflow)")
    work = tmp_path_factory.mktemp("mlflow")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (work / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            str(exe),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{work}/mlflow.db",
            "--artifacts-destination",
            str(work / "artifacts"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=work,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {(work / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(params=["folder", "mlflow"])
def release(request, tmp_path, monkeypatch) -> Release:
    """The same walk on both registries."""
    monkeypatch.chdir(tmp_path)
    if request.param == "folder":
        return Release(tmp_path, monkeypatch)
    url = request.getfixturevalue("mlflow_server")
    return Release(tmp_path, monkeypatch, f"mlflow+{url}", f"churn-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def folder_release(tmp_path, monkeypatch) -> Release:
    monkeypatch.chdir(tmp_path)
    return Release(tmp_path, monkeypatch)


@pytest.fixture
def mlflow_release(tmp_path, monkeypatch, mlflow_server) -> Release:
    monkeypatch.chdir(tmp_path)
    return Release(tmp_path, monkeypatch, f"mlflow+{mlflow_server}", f"churn-{uuid.uuid4().hex[:8]}")
