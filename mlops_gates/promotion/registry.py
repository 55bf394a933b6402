"""One interface for where model versions and environment pointers live (a folder, or MLflow's Model
Registry), plus the ledger that holds the audit log and the lock."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mlops_gates.digest import folder_files, root_digest, sha256_file
from mlops_gates.errors import GateError, Tampered
from mlops_gates.promotion.audit import Pointer
from mlops_gates.promotion.ledger import Ledger

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class Version:
    model: str
    digest: str
    files: Path  # a local folder holding exactly the model's files, checked against the digest
    signature: Path | None
    decision: Path | None
    uri: str  # where a deploy job finds the files
    digests: dict[str, str]  # relative name -> sha256:HEX, as registered (and just checked)


class Store(Protocol):
    location: str

    def add(
        self, model: str, files: Path, signature: Path | None, decision: Path | None
    ) -> tuple[Version, bool]:
        """Write once: the same content again is a no-op (False); other content under a digest is refused."""
        ...

    def version(self, model: str, digest: str) -> Version:
        """A version's files, re-hashed against what was registered (Tampered if they changed)."""
        ...

    def versions(self, model: str) -> list[str]: ...

    def models(self, ours: set[str]) -> set[str]:
        """The models the ledger answers for, given those its log names: a folder is one ledger's, so all of
        its models (one the log never names is itself a finding); MLflow may hold other teams' models."""
        ...

    def pointers(self, models: set[str]) -> dict[tuple[str, str], dict[str, Any]]:
        """Environment pointers of these models as stored, for comparison with the audit log."""
        ...

    def set_pointer(self, model: str, env: str, pointer: Pointer) -> None: ...


@dataclass
class Registry:
    store: Store
    ledger: Ledger

    @property
    def location(self) -> str:
        return self.store.location


SIGNATURE, DECISION = "model.sig", "model.decision.sig"  # their names inside a version


def describe(
    model: str, files: Path, signature: Path | None, decision: Path | None
) -> tuple[list[str], dict[str, Any]]:
    """A version's file list and version.json: root digest, each file's digest, its signatures' digests."""
    from mlops_gates.signing.statements import manifest

    m = manifest(files, [str(p) for p in (signature, decision) if p is not None])
    meta = {
        "model": model,
        "digest": "sha256:" + m.root_digest,
        "files": {n: f"sha256:{d}" for n, d in sorted(m.files.items())},
        "signature": sha256_file(signature) if signature else None,
        "decision": sha256_file(decision) if decision else None,
    }
    return sorted(m.files), meta


def already(stored: dict[str, Any], meta: dict[str, Any], where: str) -> None:
    """Write-once: the same content again is fine; other content under the same digest is refused."""
    if stored != meta:
        changed = [k for k in ("files", "signature", "decision") if stored.get(k) != meta[k]]
        raise GateError(
            f"{meta['model']} {meta['digest']} is already registered with other {' and '.join(changed)}",
            where=where,
            hint="versions are write-once: register the new content (it has its own digest), "
            "or re-sign nothing after registering",
        )


def checked(meta: dict[str, Any], digest: str, local: Path, where: str, uri: str) -> Version:
    """A version whose local copy (files/, signatures) is exactly what version.json registered."""
    files = meta.get("files")
    if not (
        isinstance(meta.get("model"), str)
        and isinstance(files, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())
    ):
        raise Tampered("version.json is not what mlops-gates writes", where=where)
    if meta.get("digest") != digest or root_digest(files) != digest:
        raise Tampered(f"version.json does not describe {digest}", where=where)
    on_disk = folder_files(local / "files")
    if on_disk != meta["files"]:
        diff = sorted({n for n, _ in set(on_disk.items()) ^ set(meta["files"].items())})
        raise Tampered(
            f"the version's files changed after it was registered: {', '.join(diff)}",
            where=where,
            hint="restore them from version control; never edit a registered version",
        )
    paths: dict[str, Path | None] = {}
    for key, name in (("signature", SIGNATURE), ("decision", DECISION)):
        p = local / name
        got = sha256_file(p) if p.is_file() else None
        if got != meta.get(key):
            raise Tampered(f"{name} changed after the version was registered", where=where)
        paths[key] = p if got else None
    return Version(
        meta["model"],
        digest,
        local / "files",
        paths["signature"],
        paths["decision"],
        uri,
        dict(meta["files"]),
    )


def check_name(model: str) -> str:
    if not NAME.match(model):
        raise GateError(
            f"{model!r} is not a model name",
            hint="use letters, digits, '.', '_' and '-' (at most 128), starting with a letter or digit",
        )
    return model


def check_digest(digest: str) -> str:
    if not DIGEST.match(digest):
        raise GateError(
            f"{digest!r} is not a digest",
            hint="pass sha256: and 64 lowercase hex digits, as `mlops-gates register` printed it",
        )
    return digest
