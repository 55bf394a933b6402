"""MLflow's Model Registry as the store, over its REST API (no mlflow package needed): a version is a model
version tagged with the root digest, whose files live in its run's artifacts (the server must serve
artifacts); an environment is an alias (ENV, and ENV-canary during a canary) plus a registered-model tag
holding the pointer. The audit log and the lock stay in a ledger folder."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

from mlops_gates.errors import GateError, RemoteError, Tampered
from mlops_gates.platforms.http import Http, Response
from mlops_gates.promotion.audit import Pointer
from mlops_gates.promotion.registry import (
    DECISION,
    SIGNATURE,
    Version,
    already,
    check_digest,
    check_name,
    checked,
    describe,
)

EXPERIMENT = "mlops-gates"
TAG = "mlops_gates."
ARTIFACTS = "mlflow-artifacts:/"


def _found(r: Response) -> bool:
    return r.status < 400 or r.status == 404


class MLflowStore:
    def __init__(self, location: str):
        self.location = location
        base = location.removeprefix("mlflow+")
        token = os.environ.get("MLFLOW_TRACKING_TOKEN", "")
        user, password = (
            os.environ.get("MLFLOW_TRACKING_USERNAME"),
            os.environ.get("MLFLOW_TRACKING_PASSWORD"),
        )
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if user and password:
            import base64

            headers = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
        self.http = Http(base.rstrip("/") + "/api/2.0", headers, secrets=(token, password or ""), retries=2)
        self._cache = tempfile.TemporaryDirectory(prefix="mlops-gates-mlflow-")

    # ------------------------------------------------------------------ REST
    def _call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            r = self.http.request(method, path, ok=kw.pop("ok", None), **kw)
        except RemoteError as exc:
            raise self._down(exc) from None
        return r.json() if r.status < 400 else None

    def _down(self, exc: RemoteError) -> RemoteError:
        """The server failed or is out of reach: exit 5, as for any service, naming which."""
        return RemoteError(f"MLflow at {self.location}: {exc.message}", status=exc.status, hint=exc.hint)

    def _version_of(self, model: str, digest: str) -> dict[str, Any] | None:
        flt = f"name='{check_name(model)}' and tag.`{TAG}digest`='{check_digest(digest)}'"
        found = self._call("GET", "mlflow/model-versions/search", params={"filter": flt}) or {}
        versions = found.get("model_versions", [])
        if len(versions) > 1:
            raise Tampered(f"{len(versions)} MLflow versions of {model} claim {digest}", where=self.location)
        return versions[0] if versions else None

    def _artifact_path(self, source: str) -> str:
        if not source.startswith(ARTIFACTS):
            raise GateError(
                f"the version's files are at {source}, which this server does not serve",
                where=self.location,
                hint="run `mlflow server` with artifact serving (the default; --artifacts-destination PATH)",
            )
        return urllib.parse.urlsplit(source).path.lstrip("/")

    def _upload(self, prefix: str, rel: str, data: bytes) -> None:
        self._call("PUT", f"mlflow-artifacts/artifacts/{prefix}/{urllib.parse.quote(rel)}", body=data)

    def _download(self, prefix: str, dest: Path) -> None:
        listing = self._call("GET", "mlflow-artifacts/artifacts", params={"path": prefix}) or {}
        for f in listing.get("files", []):
            name = f["path"].rsplit("/", 1)[-1]
            if name in ("", ".", "..") or "/" in name:
                raise Tampered(f"an artifact is named {f['path']!r}", where=self.location)
            if f.get("is_dir"):
                self._download(f"{prefix}/{name}", dest / name)
                continue
            dest.mkdir(parents=True, exist_ok=True)
            try:
                r = self.http.request(
                    "GET", f"mlflow-artifacts/artifacts/{prefix}/{urllib.parse.quote(name)}"
                )
            except RemoteError as exc:
                raise self._down(exc) from None
            (dest / name).write_bytes(r.body)

    # ------------------------------------------------------------------ Store
    def add(
        self, model: str, files: Path, signature: Path | None, decision: Path | None
    ) -> tuple[Version, bool]:
        names, meta = describe(model, files, signature, decision)
        digest = meta["digest"]
        existing = self._version_of(model, digest)
        if existing is not None:
            already(self._meta(existing), meta, self.location)
            return self.version(model, digest), False
        exp = self._call(
            "GET", "mlflow/experiments/get-by-name", params={"experiment_name": EXPERIMENT}, ok=_found
        )
        if exp is None:
            exp_id = self._call("POST", "mlflow/experiments/create", json_body={"name": EXPERIMENT})[
                "experiment_id"
            ]
        else:
            exp_id = exp["experiment"]["experiment_id"]
        run = self._call(
            "POST",
            "mlflow/runs/create",
            json_body={"experiment_id": exp_id, "run_name": f"{model}-{digest[7:19]}"},
        )["run"]["info"]
        root = self._artifact_path(run["artifact_uri"]) + "/model"
        for rel in names:
            self._upload(root, f"files/{rel}", (files / rel).read_bytes())
        for src, name in ((signature, SIGNATURE), (decision, DECISION)):
            if src is not None:
                self._upload(root, name, src.read_bytes())
        version_json = (json.dumps(meta, indent=2) + "\n").encode()
        self._upload(root, "version.json", version_json)
        self._call("POST", "mlflow/runs/update", json_body={"run_id": run["run_id"], "status": "FINISHED"})
        self._call(
            "POST",
            "mlflow/registered-models/create",
            json_body={"name": model},
            ok=lambda r: r.status < 400 or b"RESOURCE_ALREADY_EXISTS" in r.body,
        )
        self._call(
            "POST",
            "mlflow/model-versions/create",
            json_body={
                "name": model,
                "source": f"{run['artifact_uri']}/model",
                "run_id": run["run_id"],
                "tags": [
                    {"key": f"{TAG}digest", "value": digest},
                    {
                        "key": f"{TAG}version_json",
                        "value": "sha256:" + hashlib.sha256(version_json).hexdigest(),
                    },
                ],
            },
        )
        return self.version(model, digest), True

    def _meta(self, mv: dict[str, Any]) -> dict[str, Any]:
        root = self._artifact_path(mv["source"])
        try:
            r = self.http.request("GET", f"mlflow-artifacts/artifacts/{root}/version.json")
        except RemoteError as exc:
            if exc.status is None or exc.status >= 500:
                raise self._down(exc) from None
            raise Tampered(f"version.json is unreadable ({exc.message})", where=mv["source"]) from None
        tags = {t["key"]: t["value"] for t in mv.get("tags", [])}
        if "sha256:" + hashlib.sha256(r.body).hexdigest() != tags.get(f"{TAG}version_json"):
            raise Tampered("version.json changed after the version was registered", where=mv["source"])
        meta: dict[str, Any] = json.loads(r.body)
        return meta

    def version(self, model: str, digest: str) -> Version:
        mv = self._version_of(model, digest)
        if mv is None:
            raise GateError(
                f"{model} has no version {digest}",
                where=self.location,
                hint="register it first: mlops-gates register --registry REG --model NAME MODEL_DIR",
            )
        meta = self._meta(mv)
        local = Path(self._cache.name) / model / digest[7:]
        if not local.is_dir():
            self._download(self._artifact_path(mv["source"]), local)
        return checked(meta, digest, local, mv["source"], f"{mv['source']}/files")

    def versions(self, model: str) -> list[str]:
        found = (
            self._call(
                "GET", "mlflow/model-versions/search", params={"filter": f"name='{check_name(model)}'"}
            )
            or {}
        )
        return sorted(
            t["value"]
            for mv in found.get("model_versions", [])
            for t in mv.get("tags", [])
            if t["key"] == f"{TAG}digest"
        )

    def models(self, ours: set[str]) -> set[str]:
        return set(ours)  # the server may hold other teams' models, which are not this ledger's business

    def _alias(self, model: str, alias: str) -> str | None:
        """The digest tag of the version an alias points to (an alias moved by hand shows here)."""
        got = self._call(
            "GET", "mlflow/registered-models/alias", params={"name": model, "alias": alias}, ok=_found
        )
        if got is None:
            return None
        tags = {t["key"]: t["value"] for t in got["model_version"].get("tags", [])}
        return tags.get(f"{TAG}digest", f"untagged version {got['model_version']['version']}")

    def pointers(self, models: set[str]) -> dict[tuple[str, str], dict[str, Any]]:
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for model in sorted(models):
            rm = self._call("GET", "mlflow/registered-models/get", params={"name": model}, ok=_found) or {}
            for t in rm.get("registered_model", {}).get("tags", []):
                if not t["key"].startswith(f"{TAG}environment."):
                    continue
                env = t["key"].removeprefix(f"{TAG}environment.")
                try:
                    p = json.loads(t["value"])
                except ValueError:
                    raise Tampered(f"the {env} pointer tag is not JSON", where=self.location) from None
                p["digest"] = self._alias(model, env)  # what MLflow really serves
                if p.get("canary"):
                    p["canary"] = {**p["canary"], "digest": self._alias(model, f"{env}-canary")}
                out[(model, env)] = p
        return out

    def set_pointer(self, model: str, env: str, pointer: Pointer) -> None:
        for alias, digest in ((env, pointer.digest), (f"{env}-canary", (pointer.canary or {}).get("digest"))):
            if digest is None:
                self._call(
                    "DELETE",
                    "mlflow/registered-models/alias",
                    json_body={"name": model, "alias": alias},
                    ok=_found,
                )
                continue
            mv = self._version_of(model, digest)
            assert mv is not None
            self._call(
                "POST",
                "mlflow/registered-models/alias",
                json_body={"name": model, "alias": alias, "version": mv["version"]},
            )
        self._call(
            "POST",
            "mlflow/registered-models/set-tag",
            json_body={
                "name": model,
                "key": f"{TAG}environment.{env}",
                "value": json.dumps(pointer.as_json(model, env)),
            },
        )
