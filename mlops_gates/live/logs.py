"""The request logs a serving layer writes: Parquet or JSON Lines files (as a log shipper writes them, one per
window), folders of them, and labels in files of their own when they arrive later. Each file is read with its
columns renamed to their roles (request_id, version, prediction, ...)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from mlops_gates.errors import DataError
from mlops_gates.policy import Dataset

SUFFIXES = {".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


def files(paths: Sequence[Path]) -> list[Dataset]:
    """Every log file named, folders opened (their Parquet and JSON Lines files, in name order)."""
    found: list[Dataset] = []
    for p in paths:
        if p.is_dir():
            inside = sorted(f for f in p.iterdir() if f.suffix.lower() in SUFFIXES and f.stat().st_size)
            if not inside:
                raise DataError(
                    "holds no Parquet or JSON Lines files", where=str(p), hint="point at the logs"
                )
            found += [Dataset(f, SUFFIXES[f.suffix.lower()]) for f in inside]
        elif not p.exists():
            raise DataError("file not found", where=str(p), hint="check the path of the logs")
        else:
            found.append(Dataset(p, SUFFIXES.get(p.suffix.lower(), "parquet")))
    return found


def read_window(ds: Dataset, names: dict[str, str], required: Sequence[str]) -> pa.Table:
    """One file's columns, renamed to their roles; a required column missing is an error naming the file, an
    optional one is left out."""
    from mlops_gates.data.reader import column_names, read_table

    present = set(column_names(ds))
    missing = [names[r] for r in required if names[r] not in present]
    if missing:
        raise DataError(
            f"has no {' or '.join(missing)} column",
            where=str(ds.path),
            hint="log it, or name the log's column under promotion.analysis.columns",
        )
    roles = [r for r in names if names[r] in present]
    return read_table(ds, [names[r] for r in roles]).rename_columns(roles)
