"""Apache Spark: local mode here, a cluster's session where one is configured."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mlops_gates.errors import GateError
from mlops_gates.policy import Dataset

if TYPE_CHECKING:  # the models' staging is imported only where models run
    from mlops_gates.models.stage import Elsewhere


class Spark:
    """Apache Spark (local mode here; a cluster's session where one is configured). With `elsewhere`, the
    policy's models predict on the executors, and their measurements land in it once the query has run."""

    name = "spark"

    def __init__(self, elsewhere: Elsewhere | None = None) -> None:
        self.elsewhere = elsewhere
        try:
            with _quiet():
                from pyspark.sql import SparkSession
        except ImportError:
            raise GateError(
                "the spark engine needs pyspark (and Java 17 or later)",
                hint="pip install 'mlops-gates[spark]', or use --engine duckdb",
            ) from None
        # local mode: Python workers run this interpreter (and so this mlops-gates and its dependencies)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
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
            frame = r.parquet(path)
        elif ds.format == "csv":
            frame = r.option("header", True).option("inferSchema", True).csv(path)
        else:
            frame = r.json(path)
        if self.elsewhere is None:
            return frame
        from mlops_gates.stats.engines.spark_predict import with_predictions

        frame, self._measured = with_predictions(self.spark, frame, self.elsewhere)
        return frame

    def types(self, ds: Dataset) -> dict[str, str]:
        with _quiet():
            return dict(self.frame(ds).dtypes)

    def query(self, ds: Dataset, sql: Callable[[str], str]) -> pa.Table:
        with _quiet():
            self.frame(ds).createOrReplaceTempView("mlops_gates_src")
            if self.elsewhere is None:
                return self.spark.sql(sql("mlops_gates_src")).toArrow()
            from mlops_gates.stats.engines.spark_predict import failure, summary

            try:
                out = self.spark.sql(sql("mlops_gates_src")).toArrow()
            except Exception as exc:
                raise failure(
                    exc
                ) from None  # a model's failure on an executor, or a lost one: no partial result
            self.elsewhere.measured.update(summary(self._measured.value, self.elsewhere))
            return out


@contextmanager
def _quiet() -> Iterator[None]:
    """pyspark 4.3 warns that pandas 3 is new to it, at import and at first use; no pandas is involved here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield
