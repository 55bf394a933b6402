"""The request logs a serving layer writes, read into one set of columns per arm: Parquet or JSON Lines files (as
a log shipper writes them), folders of them, and labels joined by request id when they arrive in files of
their own. A request logged twice (at-least-once shipping) counts once; two different labels for one request
are an error, never a silent pick."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from mlops_gates.errors import DataError
from mlops_gates.policy import Dataset

SUFFIXES = {".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


@dataclass
class Arm:
    """One version's requests: every column the analysis needs, as numpy arrays of equal length."""

    name: str
    columns: dict[str, np.ndarray]

    @property
    def requests(self) -> int:
        return len(self.columns["version"])

    def get(self, role: str) -> np.ndarray | None:
        return self.columns.get(role)

    def labelled(self) -> np.ndarray:
        """Which requests have a label."""
        label = self.columns.get("label")
        if label is None:
            return np.zeros(self.requests, dtype=bool)
        if label.dtype.kind == "f":
            return ~np.isnan(label)
        return np.array([v is not None for v in label], dtype=bool)


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


def _read(paths: Sequence[Path], names: dict[str, str], required: Sequence[str]) -> dict[str, np.ndarray]:
    """The named columns of every file, concatenated, by role; a required column missing from a file is an
    error naming the file."""
    from mlops_gates.data.reader import column_names, read_table

    parts: dict[str, list[np.ndarray]] = {role: [] for role in names}
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
        table = read_table(ds, [names[r] for r in roles])
        for role in roles:
            parts[role].append(_numpy(table.column(names[role])))
        for role in set(names) - set(roles):  # absent from this file: missing for its rows
            parts[role].append(np.full(table.num_rows, None, dtype=object))
    return {role: _concat(arrays) for role, arrays in parts.items() if arrays}


def _numpy(col: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_floating(col.type) or pa.types.is_integer(col.type):
        return col.cast(pa.float64()).to_numpy()  # nulls become NaN
    if pa.types.is_boolean(col.type):
        return np.asarray(col.to_pylist(), dtype=object)
    return np.asarray(col.cast(pa.string()).to_pylist(), dtype=object)


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    if all(a.dtype.kind == "f" for a in arrays):
        return np.concatenate(arrays)
    return np.concatenate([a.astype(object) for a in arrays])


def read_arms(
    requests: Sequence[Path],
    labels: Sequence[Path],
    names: dict[str, str],
    roles: Sequence[str],
    arms: tuple[str, str],
) -> tuple[Arm, Arm, int]:
    """(canary, stable, requests of other versions) from the logs, with labels joined by request id."""
    cols = _read(
        requests, {r: names[r] for r in ("request_id", "version", *roles)}, ("request_id", "version")
    )
    ids = cols["request_id"].astype(str)
    _, first = np.unique(ids, return_index=True)  # a request shipped twice counts once
    keep = np.sort(first)
    cols = {role: a[keep] for role, a in cols.items()}
    if labels:
        cols["label"] = _join_labels(cols["request_id"].astype(str), labels, names)
    version = cols["version"].astype(str)
    picked = [Arm(a, {role: c[version == a] for role, c in cols.items()}) for a in arms]
    others = int(len(version) - sum(arm.requests for arm in picked))
    return picked[0], picked[1], others


def _join_labels(ids: np.ndarray, labels: Sequence[Path], names: dict[str, str]) -> np.ndarray:
    got = _read(labels, {"request_id": names["request_id"], "label": names["label"]}, ("request_id", "label"))
    lid, lval = got["request_id"].astype(str), got["label"]
    order = np.argsort(lid, kind="stable")
    lid, lval = lid[order], lval[order]
    dup = lid[1:] == lid[:-1]
    if dup.any():
        same = np.array([lval[i] == lval[i + 1] for i in np.flatnonzero(dup)], dtype=bool)
        if not same.all():
            bad = str(lid[1:][dup][~same][0])
            raise DataError(
                f"request {bad!r} has two different labels",
                where=", ".join(str(p) for p in labels),
                hint="a request has one outcome: fix the labelling job",
            )
        keep = np.concatenate([[True], ~dup])
        lid, lval = lid[keep], lval[keep]
    pos = np.searchsorted(lid, ids)
    pos[pos == len(lid)] = 0
    hit = lid[pos] == ids if len(lid) else np.zeros(len(ids), dtype=bool)
    out = np.full(len(ids), np.nan) if lval.dtype.kind == "f" else np.full(len(ids), None, dtype=object)
    out[hit] = lval[pos[hit]]
    return out
