"""Feast as a data source, in its own environment."""

from __future__ import annotations

import click

from mlops_gates.cli.options import setup_command


@click.group("feast")
def feast() -> None:
    """Evaluation data from a Feast feature store (docs/feast.md)."""


feast.add_command(setup_command("feast", "mlops_gates.data.feature_store:FEAST"))
