"""Open a registry by where it lives: a folder, or an MLflow server (loaded only when named)."""

from __future__ import annotations

from pathlib import Path

from mlops_gates.errors import GateError
from mlops_gates.promotion.folder import FolderStore
from mlops_gates.promotion.ledger import Ledger
from mlops_gates.promotion.registry import Registry


def open_registry(
    location: str | Path, ledger: str | Path | None = None, encrypted: bool = False
) -> Registry:
    """A folder path, or mlflow+http(s)://HOST[:PORT], whose audit log and lock live in a ledger folder;
    `encrypted`: versions are sealed at rest (a folder registry)."""
    loc = str(location)
    if loc.startswith(("mlflow+http://", "mlflow+https://")):
        if encrypted:
            raise GateError(
                "encryption at rest is built for folder registries",
                where=loc,
                hint="use the MLflow artifact store's own encryption, and drop promotion.encrypted",
            )
        if ledger is None:
            raise GateError(
                "an MLflow registry needs a ledger folder for its audit log",
                where=loc,
                hint="set promotion.ledger in the policy (a folder kept in Git, say) or pass --ledger",
            )
        from mlops_gates.promotion.mlflow_store import MLflowStore  # urllib and JSON only, but rarely used

        return Registry(MLflowStore(loc), Ledger(Path(ledger)))
    if "://" in loc:
        raise GateError(
            f"unknown registry kind {loc.split('://')[0]!r}",
            where=loc,
            hint="use a folder path or mlflow+http(s)://HOST:PORT",
        )
    root = Path(loc)
    return Registry(FolderStore(root, encrypted), Ledger(Path(ledger) if ledger else root))
