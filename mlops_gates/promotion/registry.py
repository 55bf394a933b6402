"""One interface for where model versions and environment pointers live (a folder, or MLflow's Model
Registry), plus the ledger that holds the audit log and the lock."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mlops_gates.errors import ExitCode, GateError
from mlops_gates.promotion.audit import Pointer
from mlops_gates.promotion.ledger import Ledger

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class Refused(GateError):
    """A promotion or rollback that the evidence or the rules do not allow; nothing was changed."""

    exit_code = ExitCode.BLOCKED


class Tampered(GateError):
    """The registry is not what mlops-gates wrote: never followed, always reported."""

    exit_code = ExitCode.BLOCKED


@dataclass(frozen=True)
class Version:
    model: str
    digest: str
    files: Path  # a local folder holding exactly the model's files, checked against the digest
    signature: Path | None
    decision: Path | None
    uri: str  # where a deploy job finds the files


class Store(Protocol):
    location: str
    shared: bool  # True: other ledgers' models may live here too (MLflow); a folder is one ledger's

    def add(
        self, model: str, files: Path, signature: Path | None, decision: Path | None
    ) -> tuple[Version, bool]:
        """Write once: the same content again is a no-op (False); other content under a digest is refused."""
        ...

    def version(self, model: str, digest: str) -> Version:
        """A version's files, re-hashed against what was registered (Tampered if they changed)."""
        ...

    def versions(self, model: str) -> list[str]: ...

    def models(self) -> list[str]: ...

    def pointers(self, models: set[str]) -> dict[tuple[str, str], dict[str, Any]]:
        """Environment pointers as stored, for comparison with the audit log: those of these models, and in a
        store that is not shared every other one too."""
        ...

    def set_pointer(self, model: str, env: str, pointer: Pointer) -> None: ...


@dataclass
class Registry:
    store: Store
    ledger: Ledger

    @property
    def location(self) -> str:
        return self.store.location


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


def open_registry(location: str | Path, ledger: str | Path | None = None) -> Registry:
    """A folder path, or mlflow+http(s)://HOST[:PORT], whose audit log and lock live in a ledger folder."""
    loc = str(location)
    if loc.startswith(("mlflow+http://", "mlflow+https://")):
        from mlops_gates.promotion.mlflow_store import MLflowStore

        if ledger is None:
            raise GateError(
                "an MLflow registry needs a ledger folder for its audit log",
                where=loc,
                hint="set promotion.ledger in the policy (a folder kept in Git, say) or pass --ledger",
            )
        return Registry(MLflowStore(loc), Ledger(Path(ledger)))
    if "://" in loc:
        raise GateError(
            f"unknown registry kind {loc.split('://')[0]!r}",
            where=loc,
            hint="use a folder path or mlflow+http(s)://HOST:PORT",
        )
    from mlops_gates.promotion.folder import FolderStore

    root = Path(loc)
    return Registry(FolderStore(root), Ledger(Path(ledger) if ledger else root))
