"""DuckDB in this process: multi-threaded and out of core over local Parquet, CSV and JSONL."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from mlops_gates.errors import GateError
from mlops_gates.policy import Dataset


class DuckDB:
    """DuckDB in this process: multi-threaded and out of core over local Parquet, CSV and JSONL."""

    name = "duckdb"

    def __init__(self) -> None:
        try:
            import duckdb
        except ImportError:
            raise GateError(
                "the duckdb engine needs the duckdb package (one of mlops-gates' dependencies)",
                hint="pip install duckdb, or use --engine arrow",
            ) from None
        self.con = duckdb.connect()
        self.con.execute("SET enable_progress_bar = false")  # CI logs are not terminals

    @staticmethod
    def quote(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def source(self, ds: Dataset) -> str:
        path = "'" + str(ds.path).replace("'", "''") + "'"
        return {
            "parquet": f"read_parquet({path})",
            "csv": f"read_csv({path}, header = true)",
            "jsonl": f"read_json({path}, format = 'newline_delimited')",
        }[ds.format]

    def types(self, ds: Dataset) -> dict[str, str]:
        rows = self.con.execute(f"DESCRIBE SELECT * FROM {self.source(ds)}").fetchall()
        return {r[0]: r[1] for r in rows}

    def query(self, ds: Dataset, sql: Callable[[str], str]) -> pa.Table:
        return self.con.sql(sql(self.source(ds))).to_arrow_table()
