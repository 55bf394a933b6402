"""The one streaming pass: Arrow record batches -> cell table (+ integrity facts) -> EvalStats."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops_gates.data.reader import column_names, iter_batches, require_columns
from mlops_gates.digest import sha256_file
from mlops_gates.errors import DataError, GateError
from mlops_gates.policy import Dataset, Policy
from mlops_gates.stats import engines
from mlops_gates.stats.encode import Encoder
from mlops_gates.stats.engines import sql
from mlops_gates.stats.table import CellTable

if TYPE_CHECKING:  # the models' staging is imported only where models run
    from mlops_gates.models.stage import Elsewhere


@dataclass
class EvalStats:
    task: str
    classes: list[Any]  # class display values, in code order (binary: [other, positive])
    group_columns: tuple[str, ...]  # sensitive columns then slice columns
    strata: list[tuple[Any, ...]]  # stratum id -> values of group_columns
    cells: CellTable
    edges: np.ndarray
    rows: int
    has_baseline: bool
    has_score: dict[str, bool]
    data_digest: str
    integrity: Any = None  # IntegrityStats when the policy has an integrity gate


def metric_columns(policy: Policy) -> list[str]:
    c = policy.columns
    cols = [c.label]
    for mc in (c.candidate, c.baseline):
        if mc:
            cols += ([mc.prediction] if mc.prediction else []) + list(mc.score)
    cols += list(c.sensitive) + list(c.slices) + ([c.weight] if c.weight else [])
    return list(dict.fromkeys(cols))


def stratum_order(values: tuple[Any, ...]) -> tuple[tuple[bool, str, str], ...]:
    return tuple((v is None, type(v).__name__, str(v)) for v in values)


def canonical_strata(
    strata: list[tuple[Any, ...]], table: CellTable
) -> tuple[list[tuple[Any, ...]], CellTable]:
    """Number strata by their values, not by when they first appeared, so the same rows in any order or in
    any split into shards give the same table (and so the same bootstrap)."""
    order = sorted(range(len(strata)), key=lambda s: stratum_order(strata[s]))
    new_id = np.empty(len(strata), dtype=np.int64)
    new_id[order] = np.arange(len(strata))
    keys = dict(table.keys)
    keys["stratum"] = new_id[keys["stratum"]]
    return [strata[s] for s in order], CellTable(keys, table.sums, table.n).groupby(tuple(keys))


def _binary_classes(policy: Policy, enc: Encoder) -> list[Any]:
    """[negative, positive] label values, after checking predictions speak the label's language."""
    where = str(policy.eval_data.path)
    labels = enc.label_book.values()
    positive = str(policy.positive_label)
    if positive not in {str(v) for v in labels}:
        raise DataError(
            f"positive_label {policy.positive_label!r} never appears in label '{policy.columns.label}' "
            f"(values: {', '.join(map(repr, labels[:5]))})",
            where=where,
            hint="set positive_label to one of those values",
        )
    allowed = {str(x) for x in labels}
    for side, book in enc.pred_books.items():
        foreign = [v for v in book.values() if str(v) not in allowed]
        # when every label is one class, the predictions may hold the one other value
        if foreign and not (len(allowed) == 1 and len(foreign) == 1):
            raise DataError(
                f"{'candidate' if side == 'c' else 'baseline'} predictions hold values the label never takes: "
                f"{', '.join(map(repr, foreign[:5]))} (label values: {', '.join(map(repr, labels[:5]))})",
                where=where,
                hint="write predictions in the label's values, or give scores and settings.threshold",
            )
    return [next((v for v in labels if str(v) != positive), "other"), policy.positive_label]


def _stream(
    ds: Dataset, columns: list[str], enc: Encoder, integrity: Any, cells: bool = True
) -> tuple[CellTable | None, int]:
    """One pass over record batches: the cell table (unless an engine made it) and the integrity facts."""
    table: CellTable | None = None
    offset = 0
    for batch in iter_batches(ds, columns):
        if batch.num_rows == 0:
            continue
        if cells:
            part, y = enc.cells(batch, offset)
            table = part if table is None else table.merge(part)
        else:
            y = enc.validate(batch, offset)
        if integrity:
            integrity.update(batch, y, offset)
        offset += batch.num_rows
    return table, offset


def _query(
    pool: Any, policy: Policy, eng: engines.Engine, enc: Encoder, integrity: Any, local: list[str]
) -> tuple[CellTable, int]:
    """The engine's query, beside the stream here that checks the rules and gathers the integrity facts."""
    ds = policy.eval_data
    pending = pool.submit(sql.query, policy, eng, enc)
    try:
        _stream(
            ds, list(dict.fromkeys(local + (integrity.columns if integrity else []))), enc, integrity, False
        )
    except DataError:
        pending.cancel()
        raise
    try:
        return sql.tabulate(policy, enc, *pending.result())
    except engines.Invalid as exc:
        _stream(ds, local, Encoder(policy, str(ds.path), enc.produced), None, cells=False)  # names the rows
        raise DataError(str(exc), where=str(ds.path), hint="fix those rows") from None


def collect(policy: Policy, engine: str = "auto", elsewhere: Elsewhere | None = None) -> EvalStats:
    """Read the evaluation data once and return every statistic the gates need; a query engine other than
    Arrow computes the cells where the data lives (integrity facts, which keep per-row hashes, stream here).
    `elsewhere`: models whose scores the engine computes beside the data; the stream here checks the rest."""
    from concurrent.futures import ThreadPoolExecutor

    from mlops_gates.stats.integrity import IntegrityCollector

    ds = policy.eval_data
    names = column_names(ds)
    wanted = metric_columns(policy)
    produced = elsewhere.columns if elsewhere is not None else set()
    local = [c for c in wanted if c not in produced]
    require_columns(ds, local, names)
    enc = Encoder(policy, str(ds.path), produced)
    integrity = IntegrityCollector.for_policy(policy, names, wanted)
    table: CellTable | None = None
    offset = 0
    engine = engines.choose(engine, policy)
    if produced and engine != "spark":
        raise GateError("models predict beside the data only on the spark engine", hint="use --engine spark")
    eng = engines.engine(engine, elsewhere) if engine != "arrow" else None
    # side by side (hashlib and the engines free the GIL): the file's digest, the engine's query, the stream
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(sha256_file, ds.path)  # the record names exactly the bytes that were judged
        if eng is not None:
            table, offset = _query(pool, policy, eng, enc, integrity, local)
        else:
            read = list(dict.fromkeys(wanted + (integrity.columns if integrity else [])))
            table, offset = _stream(ds, read, enc, integrity)
        digest = first.result()
    if sha256_file(ds.path) != digest:
        raise DataError(
            "the file changed while it was being read",
            where=str(ds.path),
            hint="run again on a file that stays put",
        )
    if enc.baseline_seen == {True, False}:
        raise DataError(
            "the baseline's columns are empty in some batches of rows and filled in others",
            where=str(ds.path),
            hint="fill the baseline for every row, or leave it empty everywhere when there is no baseline yet",
        )
    if table is None:
        raise DataError(
            "has no rows", where=str(ds.path), hint="write the evaluation rows to it, or fix the path"
        )
    classes = _binary_classes(policy, enc) if policy.task == "binary" else list(policy.classes)
    group_values = [b.values() for b in enc.group_books]
    found = [()] * len(enc.strata)
    for codes, sid in enc.strata.items():
        found[sid] = tuple(group_values[i][c] for i, c in enumerate(codes))
    strata, table = canonical_strata(found, table)
    c = policy.columns
    return EvalStats(
        task=policy.task,
        classes=classes,
        group_columns=enc.group_columns,
        strata=strata,
        cells=table,
        edges=enc.edges,
        rows=offset,
        has_baseline=c.baseline is not None and True in enc.baseline_seen,
        has_score={
            "c": bool(c.candidate and c.candidate.score),
            "b": bool(c.baseline and c.baseline.score and True in enc.baseline_seen),
        },
        data_digest=digest,
        integrity=integrity.finish(policy) if integrity else None,
    )
