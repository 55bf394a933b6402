"""Apache Spark: local mode here, a cluster's session where one is configured."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from mlops_gates.errors import GateError
from mlops_gates.policy import Dataset


class Spark:
    """Apache Spark (local mode here; a cluster's session where one is configured)."""

    name = "spark"

    def __init__(self) -> None:
        try:
            with _quiet():
                from pyspark.sql import SparkSession
        except ImportError:
            raise GateError(
                "the spark engine needs pyspark (and Java 17 or later)",
                hint="pip install 'mlops-gates[spark]', or use --engine duckdb",
            ) from None
        with _quiet():
            self.spark = (
                SparkSession.builder.appName("mlops-gates")
                .config("spark.ui.enabled", "false")
                .config("spark.ui.showConsoleProgress", "false")
                .config("spark.sql.session.timeZone", "UTC")
                .getOrCreate()
            )
        self.spark.sparkContext.setLogLevel("ERROR")

    @staticmethod
    def quote(name: str) -> str:
        return "`" + name.replace("`", "``") + "`"

    def frame(self, ds: Dataset) -> Any:
        r = self.spark.read
        path = str(ds.path)
        if ds.format == "parquet":
            return r.parquet(path)
        if ds.format == "csv":
            return r.option("header", True).option("inferSchema", True).csv(path)
        return r.json(path)

    def types(self, ds: Dataset) -> dict[str, str]:
        with _quiet():
            return dict(self.frame(ds).dtypes)

    def query(self, ds: Dataset, sql: Callable[[str], str]) -> pa.Table:
        with _quiet():
            self.frame(ds).createOrReplaceTempView("mlops_gates_src")
            return self.spark.sql(sql("mlops_gates_src")).toArrow()


@contextmanager
def _quiet() -> Iterator[None]:
    """pyspark 4.3 warns that pandas 3 is new to it, at import and at first use; no pandas is involved here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield
