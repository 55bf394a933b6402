"""Integrity facts gathered in the same pass: missing values, contract violations, duplicates,
conflicting labels, train/eval overlap, class balance and drift against reference data."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlops_gates.data.reader import column_names, read_table, require_columns
from mlops_gates.policy import Dataset, Policy
from mlops_gates.stats.encode import dictionary_indices
from mlops_gates.stats.row_hashes import RowHashes

_MIX = np.uint64(0x9E3779B97F4A7C15)
_NULL = np.uint64(0x5BD1E9955BD1E995)
DRIFT_BINS = 10  # PSI on reference deciles
KS_POINTS = 200  # KS evaluated at this many reference quantiles


def _splitmix(x: np.ndarray, scratch: np.ndarray | None = None) -> np.ndarray:
    """SplitMix64's finaliser on a copy of `x`."""
    return _mix(x + _MIX, scratch)


def _mix(x: np.ndarray, t: np.ndarray | None = None) -> np.ndarray:
    """SplitMix64's finaliser after the increment, in place in `x` (with `t` as scratch): no temporaries, which
    made hashing the integrity gate's rows half of a 10M-row evaluation."""
    t = np.empty_like(x) if t is None else t
    for shift, mul in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
        np.right_shift(x, np.uint64(shift), out=t)
        np.bitwise_xor(x, t, out=x)
        np.multiply(x, np.uint64(mul), out=x)
    np.right_shift(x, np.uint64(31), out=t)
    np.bitwise_xor(x, t, out=x)
    return x


def is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)


def column_hash(arr: pa.Array, scratch: np.ndarray | None = None) -> np.ndarray:
    """A 64-bit hash per value that ignores storage type (3 in int32 and 3.0 in a CSV hash alike)."""
    if is_numeric(arr.type):
        x = np.array(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)  # a copy
        nan = np.isnan(x)
        x[x == 0.0] = 0.0  # -0.0 == 0.0
        h = x.view(np.uint64)
        h += _MIX
        _mix(h, scratch)
        h[nan] = _NULL
        return h
    enc = pc.dictionary_encode(pc.cast(arr, pa.string()) if not pa.types.is_dictionary(arr.type) else arr)
    lut = np.array(
        [
            int.from_bytes(hashlib.blake2b(str(v).encode(), digest_size=8).digest(), "little")
            for v in enc.dictionary.to_pylist()
        ]
        + [int(_NULL)],
        dtype=np.uint64,
    )
    return lut[dictionary_indices(enc.indices, len(lut) - 1)]


def rows_hash(batch: pa.RecordBatch | pa.Table, cols: list[str]) -> np.ndarray:
    h = np.zeros(batch.num_rows, dtype=np.uint64)
    t = np.empty_like(h)
    for c in cols:
        arr = batch.column(c) if isinstance(batch, pa.RecordBatch) else batch.column(c).combine_chunks()
        h ^= column_hash(arr, t)
        h += _MIX
        _mix(h, t)
    return h


def _missing(arr: pa.Array) -> int:
    n = arr.null_count
    if pa.types.is_floating(arr.type):
        n += int(pc.sum(pc.is_nan(arr)).as_py() or 0)  # a null is null here, and not summed
    return n


def binned(xs: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of sorted values per bin [edges[k-1], edges[k]) (as searchsorted(edges, x, 'right') would
    number them); sorting and searching the edges is several times faster than searching every value."""
    return np.diff(np.r_[0, np.searchsorted(xs, edges, side="left"), len(xs)])


def in_sorted(sorted_values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Whether each x is among sorted, unique values: a binary search each (np.isin sorts everything again)."""
    if not len(sorted_values):
        return np.zeros(len(x), dtype=bool)
    return sorted_values[np.minimum(np.searchsorted(sorted_values, x), len(sorted_values) - 1)] == x


def coarse(fine: np.ndarray, fine_edges: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts on `edges` from counts on `fine_edges`, which hold every edge: one search per value, not two."""
    to = np.r_[0, np.searchsorted(edges, fine_edges, side="right")]
    return np.bincount(to, weights=fine, minlength=len(edges) + 1)


@dataclass
class Drift:
    kind: str  # "numeric" or "categorical"
    ref: np.ndarray  # reference counts per bin/category
    cur: np.ndarray
    ks_ref: np.ndarray = field(default_factory=lambda: np.zeros(0))  # counts on the KS grid
    ks_cur: np.ndarray = field(default_factory=lambda: np.zeros(0))
    edges: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ks_edges: np.ndarray = field(default_factory=lambda: np.zeros(0))
    categories: list[Any] = field(default_factory=list)

    def add(self, arr: pa.Array | pa.ChunkedArray) -> None:
        """Count values into the current side, on the reference's bins (new categories get a bin)."""
        if self.kind == "numeric":
            x = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
            fine = binned(np.sort(x[~np.isnan(x)]), self.ks_edges)
            self.ks_cur += fine
            self.cur += coarse(fine, self.ks_edges, self.edges)
            return
        vc = pc.value_counts(arr.drop_null())
        for v, k in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True):
            if v not in self.categories:
                self.categories.append(v)
                self.ref = np.append(self.ref, 0)
                self.cur = np.append(self.cur, 0)
            self.cur[self.categories.index(v)] += k


@dataclass
class IntegrityStats:
    """Integrity facts; row hashes are kept so that shards merge exactly (duplicates across shards count)."""

    rows: int
    features: list[str]
    missing: dict[str, int]
    violations: list[dict[str, Any]]  # {column, check, count, detail}
    leakage: int | None
    drift: dict[str, Drift]
    hashes: RowHashes  # each row's feature hash and label (in memory, or spilled to disk in buckets)

    @property
    def duplicates(self) -> int:
        total = 0
        for fh, y in self.hashes.parts():
            rh = np.sort(_splitmix(fh ^ np.asarray(y, dtype=np.uint64)))  # features and label together
            total += int(np.count_nonzero(rh[1:] == rh[:-1]))
        return total

    @property
    def conflicts(self) -> int:
        """Rows that share their features with a row of another label (only repeated features can)."""
        return sum(_conflicts(fh, y) for fh, y in self.hashes.parts())


def _conflicts(fh: np.ndarray, y: np.ndarray) -> int:
    fs = np.sort(fh)
    repeated = np.unique(fs[1:][fs[1:] == fs[:-1]])
    if not len(repeated):
        return 0
    inside = in_sorted(repeated, fh)
    fh, y = fh[inside], y[inside]
    order = np.lexsort((y, fh))
    f, lab = fh[order], y[order]
    start = np.r_[True, f[1:] != f[:-1]]
    gid = np.cumsum(start) - 1
    lo = np.minimum.reduceat(lab, np.flatnonzero(start))
    hi = np.maximum.reduceat(lab, np.flatnonzero(start))
    return int((lo != hi)[gid].sum())


ROW_CHECKS = {"max_duplicate_rate", "max_conflicting_label_rate", "max_leakage_rate"}  # they compare rows


class IntegrityCollector:
    def __init__(
        self,
        features: list[str],
        label: str,
        contract: dict[str, Any],
        drift: dict[str, Drift],
        train_hashes: np.ndarray | None,
        names: list[str],
        checks: set[str],
    ):
        self.features = features
        self.label = label
        self.contract = contract
        self.drift = drift
        self.train_hashes = train_hashes
        self.hashing = bool(checks & ROW_CHECKS)  # a feature hash and the label: 9 bytes a row
        self.counting = "max_missing_rate" in checks
        present = [c for c in contract if c in names]
        read = features if self.hashing or self.counting else []
        self.columns = list(dict.fromkeys([*read, label, *present, *drift]))
        self.rows = 0
        self.missing = dict.fromkeys(features, 0)
        self.violations: dict[tuple[str, str], dict[str, Any]] = {}
        self.hashes = RowHashes()

    @classmethod
    def for_policy(cls, policy: Policy, names: list[str], mapped: list[str]) -> IntegrityCollector | None:
        gates = [g for g in policy.gates if g.type == "integrity"]
        if not gates:
            return None
        cfg: dict[str, Any] = {}
        for g in gates:
            cfg.update(g.config)
        cols = policy.columns
        if cols.features is not None:
            require_columns(policy.eval_data, list(cols.features), names)
            features = list(cols.features)
        else:
            model_cols = set(mapped) - set(cols.sensitive) - set(cols.slices)
            features = [n for n in names if n not in model_cols]
        contract = {k: v for k, v in cfg.get("contract", {}).items()}
        drift: dict[str, Drift] = {}
        if "drift" in cfg and policy.reference:
            wanted = list(cfg["drift"].get("features", features))
            require_columns(policy.eval_data, wanted, names)
            # Parquet column by column (two at a time: reading and sorting free the GIL), never whole
            parts = [[n] for n in wanted] if policy.reference.format == "parquet" else [wanted]
            ref = policy.reference
            with ThreadPoolExecutor(2) as pool:
                for found in pool.map(lambda part: reference_drift(read_reference(ref, part), part), parts):
                    drift |= found
        train = None
        if "max_leakage_rate" in cfg and policy.training:
            tnames = column_names(policy.training)
            require_columns(policy.training, features, tnames)
            train = np.unique(rows_hash(read_table(policy.training, features), features))
        return cls(features, cols.label, contract, drift, train, names, set(cfg))

    def _violation(self, column: str, check: str, count: int, detail: str) -> None:
        if count:
            v = self.violations.setdefault(
                (column, check), {"column": column, "check": check, "count": 0, "detail": detail}
            )
            v["count"] += count

    def update(self, batch: pa.RecordBatch, y: np.ndarray, offset: int) -> None:
        n = batch.num_rows
        self.rows += n
        if self.counting:
            for c in self.features:
                self.missing[c] += _missing(batch.column(c))
        for c, rule in self.contract.items():
            if c not in batch.schema.names:
                self._violation(c, "present", n, "the column is missing from the data")
                continue
            arr = batch.column(c)
            t = rule.get("type")
            ok = {
                "integer": pa.types.is_integer(arr.type),
                "number": pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type),
                "string": pa.types.is_string(arr.type)
                or pa.types.is_large_string(arr.type)
                or pa.types.is_dictionary(arr.type),
                "boolean": pa.types.is_boolean(arr.type),
                None: True,
            }[t]
            if not ok:
                self._violation(c, "type", n, f"holds {arr.type}, the contract says {t}")
                continue
            if rule.get("nullable") is False:
                self._violation(
                    c, "nullable", _missing(arr), "has empty values, the contract says nullable: false"
                )
            valid = arr.drop_null()
            if "allowed" in rule and len(valid):
                try:
                    allowed = pa.array(rule["allowed"]).cast(valid.type, safe=False)
                except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                    self._violation(
                        c, "allowed", n, f"the allowed values {rule['allowed'][:5]} are not {arr.type} values"
                    )
                    continue
                inside = pc.is_in(valid, value_set=allowed)
                bad = len(valid) - int(pc.sum(inside).as_py() or 0)
                sample = pc.filter(valid, pc.invert(inside))[:3].to_pylist() if bad else []
                self._violation(c, "allowed", bad, f"values outside the allowed list, e.g. {sample}")
            if ("min" in rule or "max" in rule) and not is_numeric(arr.type):
                self._violation(c, "range", n, f"min/max need numbers; the column holds {arr.type}")
            elif ("min" in rule or "max" in rule) and len(valid):
                x = pc.cast(valid, pa.float64()).to_numpy(zero_copy_only=False)
                lo, hi = rule.get("min", -np.inf), rule.get("max", np.inf)
                bad_mask = (x < lo) | (x > hi)
                if bad_mask.any():
                    self._violation(
                        c,
                        "range",
                        int(bad_mask.sum()),
                        f"values outside [{lo}, {hi}], e.g. {x[bad_mask][:3].tolist()}",
                    )
        if self.hashing:
            y = np.asarray(y)
            self.hashes.add(
                rows_hash(batch, self.features),
                y.astype(np.min_scalar_type(y.max())) if y.dtype.kind in "iu" and len(y) else y,
            )
        for name, d in self.drift.items():
            d.add(batch.column(name))

    def finish(self, policy: Policy) -> IntegrityStats:
        train = self.train_hashes
        leakage = (
            None if train is None else sum(int(in_sorted(train, fh).sum()) for fh, _ in self.hashes.parts())
        )
        return IntegrityStats(
            self.rows,
            self.features,
            self.missing,
            list(self.violations.values()),
            leakage,
            self.drift,
            self.hashes,
        )


def read_reference(ref: Dataset, wanted: list[str]) -> pa.Table:
    require_columns(ref, list(wanted), column_names(ref))
    return read_table(ref, list(wanted))


def reference_drift(table: pa.Table, wanted: list[str]) -> dict[str, Drift]:
    """The reference side of drift for each column: decile bins (and a KS grid) or category counts."""
    out: dict[str, Drift] = {}
    for name in wanted:
        arr = table.column(name).combine_chunks()
        if is_numeric(arr.type) and not pa.types.is_boolean(arr.type):
            x = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
            x = np.sort(x[~np.isnan(x)])  # sorted, quantiles and counts come cheap
            # one quantile pass: the deciles are every 20th point of the KS grid (the same q, the same value)
            grid = np.quantile(x, np.arange(1, KS_POINTS) / KS_POINTS) if len(x) else np.zeros(0)
            edges = np.unique(grid[KS_POINTS // DRIFT_BINS - 1 :: KS_POINTS // DRIFT_BINS])
            ks_edges = np.unique(grid)
            fine = binned(x, ks_edges)
            out[name] = Drift(
                "numeric",
                coarse(fine, ks_edges, edges).astype(np.float64),
                np.zeros(len(edges) + 1),
                fine.astype(np.float64),
                np.zeros(len(ks_edges) + 1),
                edges,
                ks_edges,
            )
        else:
            vc = pc.value_counts(arr.drop_null())
            cats = vc.field("values").to_pylist()
            out[name] = Drift(
                "categorical",
                np.array(vc.field("counts").to_pylist(), dtype=np.float64),
                np.zeros(len(cats)),
                categories=cats,
            )
    return out
