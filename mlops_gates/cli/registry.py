"""The registry's own upkeep: rotate the key that encrypts it at rest."""

from __future__ import annotations

from pathlib import Path

import click

from mlops_gates.cli.promotion import LEDGER, POLICY, REGISTRY, registry_of
from mlops_gates.errors import GateError


@click.group("registry")
def registry_group() -> None:
    """Upkeep of a folder registry (docs/enterprise.md)."""


@registry_group.command("rotate-key")
@click.option(
    "--new-key",
    required=True,
    metavar="PATH|URI",
    help="The new registry key: a key file (32 random bytes) or a pkcs11: URI. The current one comes from "
    "MLOPS_GATES_REGISTRY_KEY.",
)
@POLICY
@REGISTRY
@LEDGER
def rotate_key(new_key: str, policy_path: Path, registry: str | None, ledger: Path | None) -> None:
    """Rewrap every version's data key with a new registry key (the sealed files stay as they are), and seal any
    version still stored plain. Then point MLOPS_GATES_REGISTRY_KEY at the new key."""
    from mlops_gates.promotion.crypt import registry_key
    from mlops_gates.promotion.folder import FolderStore

    reg = registry_of(registry, ledger, policy_path)
    if not isinstance(reg.store, FolderStore):
        raise GateError("only a folder registry is encrypted at rest", where=reg.location)
    new = registry_key(new_key)
    with reg.ledger.locked():
        rewrapped, sealed = reg.store.rotate(new)
    click.echo(f"rewrapped {rewrapped} and sealed {sealed} versions under the registry key {new.id}")
