"""Engines: what computes the cell table. The streaming pass (arrow, here) always reads the data once, to
check every rule and name bad rows; a query engine (DuckDB in process, Spark where the data lives) computes the
cells beside it from one GROUP BY (sql.py), which the streaming pass's codebooks turn into the same cells: counts
exactly, sums up to the order of floating-point addition. Each engine is one module behind `Engine`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa

from mlops_gates.errors import GateError
from mlops_gates.policy import Dataset, Policy

if TYPE_CHECKING:  # the models' staging is imported only where models run
    from mlops_gates.models.stage import Elsewhere

NAMES = ("auto", "arrow", "duckdb", "spark")


class Invalid(Exception):
    """The data breaks a rule; the streaming pass re-reads it to name the rows (engines only count them)."""


class Engine(Protocol):
    """A query engine: how it quotes a name, the column types it reads, and one query's result as Arrow."""

    name: str

    @staticmethod
    def quote(name: str) -> str: ...

    def types(self, ds: Dataset) -> dict[str, str]: ...

    def query(self, ds: Dataset, sql: Callable[[str], str]) -> pa.Table: ...


def choose(name: str, policy: Policy) -> str:
    """auto: DuckDB for a classification policy over Parquet when it is installed; the streaming pass else."""
    if name != "auto":
        if policy.task == "regression" and name != "arrow":
            raise GateError(
                f"the {name} engine computes classification states; regression buckets rows by their position",
                hint="use --engine arrow for a regression policy",
            )
        return name
    if policy.task == "regression" or policy.eval_data.format != "parquet":
        return "arrow"
    import importlib.util

    return "duckdb" if importlib.util.find_spec("duckdb") else "arrow"


def engine(name: str, elsewhere: Elsewhere | None = None) -> Engine:
    """The query engine `name` names (not arrow: the streaming pass is not a query engine); `elsewhere`: models
    that predict beside the data, which only Spark runs."""
    if name == "duckdb":
        from mlops_gates.stats.engines.duckdb_engine import DuckDB

        return DuckDB()
    from mlops_gates.stats.engines.spark_engine import Spark

    return Spark(elsewhere)
