"""The request logs a serving layer writes, read into one Arrow table per arm: Parquet or JSON Lines files (as a
log shipper writes them), folders of them, and labels joined by request id when they arrive in files of their
own. A request logged twice (at-least-once shipping) counts once; two different labels for one request are an
error, never a silent pick. Arrow's compute does the work (a million requests per arm in well under a second)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlops_gates.errors import DataError
from mlops_gates.policy import Dataset

SUFFIXES = {".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


@dataclass
class Arm:
    """One version's requests, with columns named by role (request_id, version, label, prediction, ...)."""

    name: str
    table: pa.Table

    @property
    def requests(self) -> int:
        return self.table.num_rows

    def has(self, role: str) -> bool:
        return role in self.table.column_names and self.table.column(role).null_count < self.table.num_rows

    def labelled(self) -> pa.Table:
        """The requests whose label has arrived."""
        if "label" not in self.table.column_names:
            return self.table.slice(0, 0)
        return self.table.filter(pc.is_valid(self.table.column("label")))

    def floats(self, role: str, table: pa.Table | None = None) -> np.ndarray:
        col = (table if table is not None else self.table).column(role)
        return pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)

    def text(self, role: str, table: pa.Table | None = None) -> pa.ChunkedArray:
        """A column as text, so that 1, 1.0 and "1" are one class."""
        return pc.cast((table if table is not None else self.table).column(role), pa.string())


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


def _read(paths: Sequence[Path], names: dict[str, str], required: Sequence[str]) -> pa.Table:
    """The named columns of every file, renamed to their roles and concatenated; a required column missing
    from a file is an error naming the file, an optional one is null for that file's rows."""
    from mlops_gates.data.reader import column_names, read_table

    tables = []
    for ds in files(paths):
        present = set(column_names(ds))
        missing = [names[r] for r in required if names[r] not in present]
        if missing:
            raise DataError(
                f"has no {', '.join(missing)} column",
                where=str(ds.path),
                hint="log it, or name the log's column under promotion.analysis.columns",
            )
        roles = [r for r in names if names[r] in present]
        t = read_table(ds, [names[r] for r in roles]).rename_columns(roles)
        for role in names:
            if role not in roles:
                t = t.append_column(role, pa.nulls(t.num_rows))
        tables.append(t.select(list(names)))
    table = pa.concat_tables(tables, promote_options="permissive")
    return table.drop_columns([f.name for f in table.schema if pa.types.is_null(f.type)])  # logged nowhere


def _first_of_each(table: pa.Table) -> pa.Table:
    """Each request once: the first row logged for its id, in log order."""
    if _unique(table.column("request_id")):
        return table
    table = table.append_column("_row", pa.array(np.arange(table.num_rows)))
    first = table.group_by("request_id", use_threads=False).aggregate([("_row", "min")]).column("_row_min")
    return table.take(np.sort(first.to_numpy())).drop_columns(["_row"])


def _unique(ids: pa.ChunkedArray) -> bool:
    """No id twice (sorting and comparing neighbours is several times faster than hashing strings here)."""
    if len(ids) < 2:
        return True
    ordered = ids.take(pc.sort_indices(ids))
    return not pc.any(pc.equal(ordered.slice(1), ordered.slice(0, len(ids) - 1))).as_py()


def read_arms(
    requests: Sequence[Path],
    labels: Sequence[Path],
    names: dict[str, str],
    roles: Sequence[str],
    arms: tuple[str, str],
) -> tuple[Arm, Arm, int]:
    """(canary, stable, requests of other versions) from the logs, with labels joined by request id."""
    wanted = {r: names[r] for r in dict.fromkeys(("request_id", "version", *roles))}
    table = _read(requests, wanted, ("request_id", "version"))
    table = table.set_column(0, "request_id", pc.cast(table.column("request_id"), pa.string()))
    table = _first_of_each(table)
    if labels:
        table = _join_labels(
            table.drop_columns(["label"]) if "label" in table.column_names else table, labels, names
        )
    version = pc.cast(table.column("version"), pa.string())
    picked = [Arm(a, table.filter(pc.equal(version, a))) for a in arms]
    others = table.num_rows - sum(arm.requests for arm in picked)
    return picked[0], picked[1], others


def _join_labels(table: pa.Table, labels: Sequence[Path], names: dict[str, str]) -> pa.Table:
    got = _read(labels, {"request_id": names["request_id"], "label": names["label"]}, ("request_id", "label"))
    got = got.set_column(0, "request_id", pc.cast(got.column("request_id"), pa.string()))
    got = got.filter(pc.is_valid(got.column("label")))
    if _unique(got.column("request_id")):  # the common case: each label written once
        return table.join(got, "request_id", join_type="left outer")
    per_id = got.group_by("request_id", use_threads=False).aggregate([("label", "count_distinct")])
    twice = per_id.filter(pc.greater(per_id.column("label_count_distinct"), 1))
    if twice.num_rows:
        raise DataError(
            f"request {twice.column('request_id')[0].as_py()!r} has two different labels",
            where=", ".join(str(p) for p in labels),
            hint="a request has one outcome: fix the labelling job",
        )
    once = got.group_by("request_id", use_threads=False).aggregate([("label", "first")])
    joined = table.join(once.rename_columns(["request_id", "label"]), "request_id", join_type="left outer")
    return joined
