"""Feast as a data source, in its own environment."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("feast")
def feast() -> None:
    """Evaluation data from a Feast feature store (docs/feast.md)."""


@feast.command("setup")
@click.option(
    "--path",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to create it (default: MLOPS_GATES_FEAST_ENV or ~/.cache/mlops-gates/feast-VERSION).",
)
@click.option("--force", is_flag=True, help="Recreate it even if it looks right.")
def feast_setup(path: Path | None, force: bool) -> None:
    """Create the virtual environment Feast runs in (Feast needs pandas 2), with pinned versions."""
    from mlops_gates.data.feature_store import FEAST

    FEAST.setup(path or FEAST.default_path(), force=force, echo=click.echo)
