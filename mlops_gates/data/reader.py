"""Open a dataset as a stream of Arrow record batches, with errors that name the file and the fix."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from mlops_gates.errors import DataError
from mlops_gates.policy import Dataset
from mlops_gates.policy.metrics import suggest

BATCH_ROWS = 65_536
JSON_BLOCK = 1 << 22  # bytes of lines per JSONL batch; the column types come from the first block


def _check_file(ds: Dataset) -> None:
    if not ds.path.exists():
        raise DataError(
            "file not found",
            where=str(ds.path),
            hint="check data paths in the policy (relative paths start at the policy's folder)",
        )
    if ds.path.is_dir():
        raise DataError(
            "is a folder, not a file",
            where=str(ds.path),
            hint="point the policy at one Parquet, CSV or JSONL file",
        )
    if ds.path.stat().st_size == 0:
        raise DataError(
            "file is empty", where=str(ds.path), hint="write the evaluation rows to it, or fix the path"
        )


def schema(ds: Dataset) -> pa.Schema:
    """The file's columns and their types, read without loading its rows."""
    _check_file(ds)
    try:
        if ds.format == "parquet":
            import pyarrow.parquet as pq

            return pq.read_schema(ds.path)
        if ds.format == "csv":
            import pyarrow.csv as pcsv

            with pcsv.open_csv(ds.path) as r:
                return r.schema
        import pyarrow.json as pjson

        return pjson.open_json(ds.path, read_options=pjson.ReadOptions(block_size=JSON_BLOCK)).schema
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(
            f"cannot read as {ds.format}: {exc}",
            where=str(ds.path),
            hint=f"check that the file is valid {ds.format}, or set data.*.format in the policy",
        ) from None


def column_names(ds: Dataset) -> list[str]:
    return list(schema(ds).names)


def require_columns(ds: Dataset, wanted: list[str], names: list[str]) -> None:
    """Every wanted column exists once, and holds plain values (not lists, structs or maps)."""
    missing = [c for c in wanted if c not in names]
    if missing:
        parts = []
        for c in missing:
            s = suggest(c, names)
            parts.append(f"'{c}'" + (f" (did you mean '{s}'?)" if s else ""))
        raise DataError(
            f"missing column{'s' if len(missing) > 1 else ''} {', '.join(parts)}",
            where=str(ds.path),
            hint=f"fix the column names in the policy's 'columns' section; the file has: {', '.join(names[:30])}",
        )
    twice = [c for c in wanted if names.count(c) > 1]
    if twice:
        raise DataError(
            f"column '{twice[0]}' appears {names.count(twice[0])} times",
            where=str(ds.path),
            hint="give each column its own name; a reader would pick one of them silently",
        )
    types = schema(ds)
    for c in wanted:
        t = types.field(c).type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if pa.types.is_nested(t):
            raise DataError(
                f"column '{c}' holds {t}, not plain values",
                where=str(ds.path),
                hint="write one number or string per row in that column",
            )


def iter_batches(ds: Dataset, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """Yield record batches holding only `columns`; a malformed file raises DataError, never a traceback."""
    _check_file(ds)
    try:
        if ds.format == "parquet":
            import pyarrow.parquet as pq

            # pre_buffer keeps every row group's buffers until the file closes (pyarrow 26: RSS grew by the
            # columns' full size, 2.6 GB at 10M rows); without it memory stays one row group deep
            f = pq.ParquetFile(ds.path, pre_buffer=False)
            yield from f.iter_batches(batch_size=BATCH_ROWS, columns=columns)
        elif ds.format == "csv":
            import pyarrow.csv as pcsv

            with pcsv.open_csv(
                ds.path,
                read_options=pcsv.ReadOptions(block_size=1 << 22),
                convert_options=pcsv.ConvertOptions(include_columns=columns),
            ) as reader:
                yield from reader
        else:
            import pyarrow.json as pjson

            for batch in pjson.open_json(ds.path, read_options=pjson.ReadOptions(block_size=JSON_BLOCK)):
                yield batch.select(columns)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise DataError(
            f"cannot read as {ds.format}: {exc}",
            where=str(ds.path),
            hint="every row needs the same columns; fix the file or set data.*.format in the policy",
        ) from None


def read_table(ds: Dataset, columns: list[str]) -> pa.Table:
    batches = list(iter_batches(ds, columns))
    if not batches:
        raise DataError("has no rows", where=str(ds.path), hint="write the rows to it, or fix the path")
    return pa.Table.from_batches(batches)
