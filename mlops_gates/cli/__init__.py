"""The command line: click only, a thin client of the library. `main` is the console entry point."""

from mlops_gates.cli.main import cli, main

__all__ = ["cli", "main"]
