"""Shared test set-up: no network but loopback, and small real datasets built in the test run."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check(sock: socket.socket, address) -> None:  # type: ignore[no-untyped-def]
    if sock.family == socket.AF_UNIX:
        return
    host = address[0]
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        if host == "localhost":
            return
    raise RuntimeError(
        f"test tried to open a network connection to {address!r}; tests are offline (loopback only)"
    )


def _guarded_connect(self, address):  # type: ignore[no-untyped-def]
    _check(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):  # type: ignore[no-untyped-def]
    _check(self, address)
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
    for var in ("GITHUB_ACTIONS", "GITLAB_CI"):
        monkeypatch.delenv(var, raising=False)


class _NoAliasDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: object) -> bool:
        return True  # policies refuse aliases; write repeated values out


def write_policy(path: Path, policy: dict) -> Path:
    path.write_text(yaml.dump(policy, Dumper=_NoAliasDumper, sort_keys=False))
    return path


def binary_frame(
    n: int = 4000, seed: int = 0, shift: float = 0.0, flip_noise: float = 0.0
) -> dict[str, np.ndarray]:
    """A binary task with two sensitive features and two real models trained on it (logistic regression)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], size=n, p=[0.4, 0.6])
    race = rng.choice(["a", "b", "c"], size=n, p=[0.6, 0.3, 0.1])
    x1 = rng.normal(size=n) + (sex == "M") * 0.3
    x2 = rng.normal(size=n)
    x3 = rng.normal(size=n)
    logit = 1.2 * x1 - 0.8 * x2 + 0.5 * x3 + (race == "b") * 0.4
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    X_full = np.column_stack([x1, x2, x3])
    train = slice(0, n // 2)
    cand = LogisticRegression().fit(X_full[train], y[train])
    base = LogisticRegression().fit(X_full[train][:, :2], y[train])
    cs = cand.predict_proba(X_full)[:, 1]
    bs = base.predict_proba(X_full[:, :2])[:, 1]
    if shift:
        cs = np.clip(cs + shift * rng.normal(size=n), 0, 1)
    if flip_noise:
        flip = rng.random(n) < flip_noise
        cs = np.where(flip, 1 - cs, cs)
    ev = slice(n // 2, n)
    return {
        "x1": x1[ev],
        "x2": x2[ev],
        "x3": x3[ev],
        "sex": sex[ev],
        "race": race[ev],
        "label": np.where(y[ev], "yes", "no"),
        "cand_score": cs[ev],
        "cand_pred": np.where(cs[ev] >= 0.5, "yes", "no"),
        "base_score": bs[ev],
        "base_pred": np.where(bs[ev] >= 0.5, "yes", "no"),
    }


def write_parquet(path: Path, frame: dict[str, np.ndarray]) -> Path:
    pq.write_table(pa.table({k: pa.array(v) for k, v in frame.items()}), path)
    return path


def binary_policy(data: str = "eval.parquet", gates: list | None = None, **extra) -> dict:
    policy = {
        "version": 1,
        "task": "binary",
        "positive_label": "yes",
        "data": {"eval": {"path": data}},
        "columns": {
            "label": "label",
            "candidate": {"prediction": "cand_pred", "score": "cand_score"},
            "baseline": {"prediction": "base_pred", "score": "base_score"},
            "sensitive": ["sex", "race"],
        },
        "settings": {"bootstrap": {"replicates": 500, "seed": 1}},
        "gates": gates
        or [{"type": "accuracy", "metrics": [{"metric": "accuracy", "op": ">=", "value": 0.6}]}],
    }
    policy.update(extra)
    return policy


@pytest.fixture
def binary_case(tmp_path: Path):
    """(folder, frame): a folder with eval.parquet holding a real binary evaluation set."""
    frame = binary_frame()
    write_parquet(tmp_path / "eval.parquet", frame)
    return tmp_path, frame


def cli_main(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """Run the command line in-process, as a user would type it; returns the exit code."""
    import sys

    from mlops_gates import cli

    monkeypatch.setattr(sys, "argv", ["mlops-gates", *args])
    try:
        cli.main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
