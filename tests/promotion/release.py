"""The promotion tests' world: a repository with a policy, release keys and a registry, through which real
models (trained here, gated, signed) are registered and promoted as CI would."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_gates import policy as policy_mod
from mlops_gates.errors import Refused
from mlops_gates.evaluation import run
from mlops_gates.promotion.audit import parse_time
from mlops_gates.promotion.promote import promote, register
from mlops_gates.promotion.stores import open_registry
from mlops_gates.signing.envelope import PrivateKey
from mlops_gates.signing.sign import sign
from tests.conftest import cli_main, write_policy
from tests.signing.test_signing import keypair

HOUR = dt.timedelta(hours=1)
ROOT = Path(__file__).resolve().parents[2]
MLFLOW = "3.17.2"
GATED: dict[tuple[str, tuple[str, ...]], tuple[Path, Path]] = {}  # (policy text, features) -> (model, record)


def data(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = (rng.random(n) < 1 / (1 + np.exp(-(2 * X[:, 0] - X[:, 1])))).astype(int)
    return pa.table({"x1": X[:, 0], "x2": X[:, 1], "x3": X[:, 2], "label": y})


class Release:
    """A repository with a gates.yml, a release key, and a registry; models go through it as CI would."""

    def __init__(
        self, root: Path, monkeypatch: pytest.MonkeyPatch, registry: str = "registry", name: str = "churn"
    ):
        self.root, self.mp, self.name = root, monkeypatch, name
        pq.write_table(data(2000, 1), root / "eval.parquet")
        self.train = data(2000, 2).to_pandas()
        self.key, pub = keypair(root)
        self.other_key, _ = keypair(root / "other" if (root / "other").mkdir() is None else root)
        self.policy = write_policy(
            root / "gates.yml",
            {
                "version": 1,
                "task": "binary",
                "positive_label": 1,
                "data": {"eval": {"path": "eval.parquet"}},
                "columns": {"label": "label"},
                "models": {"candidate": {"path": "candidate"}},
                "settings": {"bootstrap": {"replicates": 200}},
                "gates": [
                    {"type": "accuracy", "metrics": [{"metric": "roc_auc", "op": ">=", "value": 0.68}]}
                ],
                "promotion": {
                    "registry": registry,
                    "ledger": "ledger" if "://" in registry else "registry",
                    "max_decision_age": "7d",
                    "watch": {"max_psi": 0.25, "max_prediction_psi": 0.25},
                    "environments": [
                        {"name": "staging", "signers": [{"key": pub.name}]},
                        {"name": "canary", "signers": [{"key": pub.name}], "min_time_in_previous": "1h"},
                        {
                            "name": "production",
                            "signers": [{"key": pub.name}],
                            "approvers": ["alice", "carol"],
                            "distinct_from_author": True,
                            "canary": [10, 50],
                        },
                    ],
                },
            },
        )
        self.pol = policy_mod.load(self.policy)
        self.reg = open_registry(self.pol.promotion.registry, self.pol.promotion.ledger)

    def model(self, name: str, features: list[str], *, key: Path | None = None, signed: bool = True) -> str:
        """Train, gate (as carol's pull request in CI), sign with the release key, register; the digest."""
        import skops.io as sio
        from sklearn.linear_model import LogisticRegression

        cache_key = (self.policy.read_text(), tuple(features))
        if cache_key not in GATED:  # a real gate run; tests with the same policy and model reuse its outcome
            cand = self.root / "candidate"
            shutil.rmtree(cand, ignore_errors=True)
            cand.mkdir()
            model = LogisticRegression().fit(self.train[features], self.train["label"])
            sio.dump(model, cand / "model.skops")
            (cand / "features.json").write_text(json.dumps(features))
            with self.mp.context() as m:
                for k, v in {
                    "GITHUB_ACTIONS": "true",
                    "GITHUB_ACTOR": "carol",
                    "GITHUB_REPOSITORY": "acme/models",
                    "GITHUB_RUN_ID": "7",
                }.items():
                    m.setenv(k, v)
                run(self.policy, self.root / f"out-{name}")
            shutil.copytree(cand, self.root / f"gated-{name}")
            GATED[cache_key] = (self.root / f"gated-{name}", self.root / f"out-{name}" / "decision.json")
        cand, record = GATED[cache_key]
        rec = json.loads(record.read_text())
        self.verdict = rec["decision"]
        folder = self.root / "releases" / name
        shutil.copytree(cand, folder)
        if signed:
            sign(folder, PrivateKey.load(key or self.key), decision=record)
        version, new = register(
            self.reg,
            self.name,
            folder,
            folder / "model.sig" if signed else None,
            folder / "model.decision.sig" if signed else None,
            actor="ci-bot",
        )
        assert new
        self.decided = parse_time(rec["created_at"])
        return version.digest

    def promote(
        self, digest: str, to: str, after: dt.timedelta, actor: str = "alice", traffic: int | None = None
    ):
        return promote(
            self.reg, self.pol, self.name, digest, to, actor=actor, traffic=traffic, now=self.decided + after
        )


def cli(r: Release, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    return cli_main_(r.mp, capsys, *args)


def refused(call, *args, **kw) -> str:
    with pytest.raises(Refused) as info:
        call(*args, **kw)
    return info.value.message


def cli_main_(mp: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli_main(mp, *args)
    out, err = capsys.readouterr()
    return code, out, err
