"""Evaluation data from a Feast feature store: point-in-time-correct features for an entity table (entity keys,
event timestamps, labels), fetched through Feast's own API in Feast's own environment (Feast needs pandas 2)
and written as Parquet, which the gates then read like any other data. What the record keeps (project, feature
service, each feature view's definition digest, the entity table's digest) is enough to rebuild the evidence."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from mlops_gates.data.sidecar import Sidecar
from mlops_gates.digest import sha256_file
from mlops_gates.errors import GateError
from mlops_gates.policy import Dataset, FeastSource, Policy

FEAST = Sidecar(
    "feast",
    {"feast": "0.67.0", "pandas": "2.3.3", "numpy": "2.4.6", "pyarrow": "26.0.1"},
    (),
    "MLOPS_GATES_FEAST_ENV",
    "feast",
)
TIMEOUT = 1800  # seconds for one retrieval
ROLES = ("eval", "reference", "training")


def fetch(src: FeastSource, entities: Path, out: Path, keys_only: bool = False) -> dict[str, Any]:
    """Point-in-time-correct features for the entity table `entities`, written to `out` (Parquet, the entity
    table's row order); Feast's answer: project, service, and each view's digest, TTL, join keys, features.
    `keys_only`: of the entity table, only the views' join keys and event_timestamp are passed to Feast (a
    served log also holds the features as served, which must not collide with Feast's)."""
    if not (src.repo / "feature_store.yaml").is_file():
        raise GateError(
            "not a Feast repository (no feature_store.yaml)",
            where=str(src.repo),
            hint="point the feast repo at the folder `feast apply` runs in",
        )
    if not entities.is_file():
        raise GateError("the entity table is missing", where=str(entities))
    env = src.env or FEAST.default_path()
    FEAST.check(env)
    with tempfile.TemporaryDirectory(prefix="mlops-gates-feast-") as tmp:
        job = Path(tmp) / "job.json"
        answer = Path(tmp) / "answer.json"
        features: Any = src.features if isinstance(src.features, str) else list(src.features)
        job.write_text(
            json.dumps(
                {
                    "action": "historical",
                    "repo": str(src.repo.resolve()),
                    "features": features,
                    "entities": str(entities.resolve()),
                    "out": str(out.resolve()),
                    "answer": str(answer),
                    "keys_only": keys_only,
                }
            )
        )
        runner = Path(__file__).resolve().parent / "feast_runner.py"
        try:
            proc = subprocess.run(
                [str(FEAST.python(env)), str(runner), str(job)],
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                cwd=src.repo,
            )
        except subprocess.TimeoutExpired:
            raise GateError(f"Feast took more than {TIMEOUT} s", where=str(src.repo)) from None
        got = json.loads(answer.read_text()) if answer.is_file() else {}
    if "ok" not in got:
        why = got.get("error") or (proc.stderr.strip().splitlines() or ["no answer"])[-1]
        raise GateError(
            f"Feast could not fetch the features: {why}",
            where=str(src.repo),
            hint="check the repository (feast apply), the feature service or references, the entity table "
            "(entity keys and event_timestamp), and that the offline store is reachable",
        )
    ok: dict[str, Any] = got["ok"]
    return ok


def retrieve(ds: Dataset, out: Path) -> dict[str, Any]:
    """Fetch the dataset's features into `out` (Parquet); what the record says of where they came from."""
    src = ds.feast
    assert src is not None
    ok = fetch(src, src.entities, out)
    return {
        "repo": str(src.repo),
        "project": ok["project"],
        "feature_service": ok["feature_service"],
        "feature_views": [{"name": v["name"], "digest": v["digest"]} for v in ok["feature_views"]],
        "entities": {"path": str(src.entities), "digest": sha256_file(src.entities)},
    }


def resolve(pol: Policy, workdir: Path) -> Policy:
    """The policy with each Feast dataset fetched into `workdir` as Parquet (its origin kept for the record)."""
    changes: dict[str, Any] = {}
    for role, field in zip(ROLES, ("eval_data", "reference", "training"), strict=True):
        ds = getattr(pol, field)
        if ds is None or ds.format != "feast":
            continue
        workdir.mkdir(parents=True, exist_ok=True)
        out = workdir / f"feast-{role}.parquet"
        changes[field] = Dataset(out, "parquet", ds.feast, origin={"feast": retrieve(ds, out)})
    return dataclasses.replace(pol, **changes) if changes else pol
