"""Per-batch arithmetic of the streaming pass: values to dense codes, scores to bins, rows checked as read."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlops_gates.errors import DataError
from mlops_gates.policy import Policy
from mlops_gates.stats.table import CellTable, from_rows

EPS = 1e-15
BUCKET_BITS = 6  # regression: rows are hashed into 2**6 = 64 buckets per stratum, the bootstrap's units


def score_edges(bins: int) -> np.ndarray:
    """Inner bin edges on [0, 1]: uniform in log-odds (fine near 0 and 1) plus the deciles calibration uses."""
    logits = np.linspace(-9.0, 9.0, max(bins - 9, 2))
    return np.unique(np.concatenate([1.0 / (1.0 + np.exp(-logits)), np.arange(1, 10) / 10.0]))


def dictionary_indices(indices: pa.Array, null: int) -> np.ndarray:
    """Dictionary indices as numpy, nulls as `null` (fill_null costs a millisecond a call even with no null)."""
    return (indices.fill_null(null) if indices.null_count else indices).to_numpy(zero_copy_only=False)


class Codebook:
    """Maps values to dense integer codes as they appear, batch after batch."""

    def __init__(self) -> None:
        self.codes: dict[Any, int] = {}

    def encode(self, arr: pa.Array) -> np.ndarray:
        enc = pc.dictionary_encode(arr)
        values = enc.dictionary.to_pylist()
        lut = np.array(
            [self.codes.setdefault(_key(v), len(self.codes)) for v in values] + [0], dtype=np.int64
        )
        idx = dictionary_indices(enc.indices, len(values))
        if enc.indices.null_count:
            lut[-1] = self.codes.setdefault(None, len(self.codes))
        return lut[idx]

    def values(self) -> list[Any]:
        return list(self.codes)


def _key(v: Any) -> Any:
    return None if isinstance(v, float) and np.isnan(v) else v


def _rows(mask: np.ndarray, offset: int) -> str:
    bad = np.flatnonzero(mask)[:5] + offset + 1
    more = f" and {int(mask.sum()) - len(bad)} more" if mask.sum() > len(bad) else ""
    return "row " + ", ".join(map(str, bad)) + more


class Encoder:
    """Per-batch arithmetic for one policy; keeps the codebooks that span batches."""

    def __init__(self, policy: Policy, where: str, produced: set[str] | None = None) -> None:
        self.p = policy
        self.produced = produced or set()  # model columns a query engine computes beside the data
        self.where = where
        self.cols = policy.columns
        self.label_book = Codebook()
        self.pred_books = {"c": Codebook(), "b": Codebook()}
        self.group_books = [Codebook() for _ in self.group_columns]
        self.strata: dict[tuple[int, ...], int] = {}
        self.edges = score_edges(policy.settings.score_bins)
        self.K = 2 if policy.task == "binary" else len(policy.classes)
        self.baseline_seen: set[bool] = set()  # True: a batch with baseline values; False: one without
        # multiclass ROC AUC (one-vs-rest) needs each class's score bin, not only the top label's
        self.ovr = policy.task == "multiclass" and any(
            "roc_auc" in {t.metric for t in g.thresholds} | {m.metric for m in g.margins}
            for g in policy.gates
        )

    def baseline_empty(self, batch: pa.RecordBatch) -> bool:
        """A baseline whose columns are empty in every row means there is no baseline yet (a first model)."""
        mc = self.cols.baseline
        assert mc is not None
        names = ([mc.prediction] if mc.prediction else []) + list(mc.score)
        return all(batch.column(n).null_count == batch.num_rows for n in names)

    @property
    def group_columns(self) -> tuple[str, ...]:
        return self.cols.sensitive + tuple(c for c in self.cols.slices if c not in self.cols.sensitive)

    def _err(self, msg: str, hint: str) -> DataError:
        return DataError(msg, where=self.where, hint=hint)

    def class_codes(self, arr: pa.Array, what: str, offset: int, book: Codebook) -> np.ndarray:
        """Label or prediction values -> class index (binary: 1 for the positive label)."""
        if arr.null_count or (pa.types.is_floating(arr.type) and pc.any(pc.is_nan(arr)).as_py()):
            mask = np.asarray(pc.is_null(arr, nan_is_null=True).to_numpy(zero_copy_only=False))
            raise self._err(
                f"{what} is empty or NaN at {_rows(mask, offset)}",
                f"drop those rows or fill {what} before the gate",
            )
        codes = book.encode(arr)
        values = book.values()
        if self.p.task == "binary":
            lut = np.array(
                [v == self.p.positive_label or str(v) == str(self.p.positive_label) for v in values],
                dtype=np.int64,
            )
            if book is self.label_book and len(values) > 2:
                raise self._err(
                    f"{what} has more than two values ({', '.join(map(repr, values[:5]))})",
                    "use task: multiclass, or map the labels to two values",
                )
            return lut[codes]
        classes = list(self.p.classes)
        lut = np.array(
            [next((i for i, c in enumerate(classes) if c == v or str(c) == str(v)), -1) for v in values],
            dtype=np.int64,
        )
        out = lut[codes]
        if (out < 0).any():
            unknown = sorted({repr(values[c]) for c in np.unique(codes[out < 0])})
            raise self._err(
                f"{what} has values not in 'classes': {', '.join(unknown[:5])} at {_rows(out < 0, offset)}",
                "add them to classes in the policy, or fix the data",
            )
        return out

    def scores(self, batch: pa.RecordBatch, names: tuple[str, ...], what: str, offset: int) -> np.ndarray:
        cols = []
        for name in names:
            arr = batch.column(name)
            if not (pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type)):
                raise self._err(
                    f"score column '{name}' holds {arr.type}, not numbers",
                    "write scores as probabilities in [0, 1]",
                )
            x = arr.to_numpy(zero_copy_only=False).astype(np.float64)
            bad = ~np.isfinite(x) | (x < 0) | (x > 1)
            if bad.any():
                raise self._err(
                    f"{what} score '{name}' is missing, NaN or outside [0, 1] at {_rows(bad, offset)}",
                    "scores must be probabilities; apply a sigmoid/softmax or fix those rows",
                )
            cols.append(x)
        s = np.stack(cols, axis=1)
        if s.shape[1] > 1:
            off = np.abs(s.sum(axis=1) - 1.0) > 1e-3
            if off.any():
                raise self._err(
                    f"{what} class probabilities do not sum to 1 at {_rows(off, offset)}",
                    "normalise each row (softmax)",
                )
        return s

    def strata_ids(self, batch: pa.RecordBatch) -> np.ndarray:
        n = batch.num_rows
        if not self.group_columns:
            self.strata.setdefault((), 0)
            return np.zeros(n, dtype=np.int64)
        codes = np.stack(
            [b.encode(batch.column(c)) for b, c in zip(self.group_books, self.group_columns, strict=True)],
            axis=1,
        )
        uniq, inv = np.unique(codes, axis=0, return_inverse=True)
        ids = np.array(
            [self.strata.setdefault(tuple(int(x) for x in row), len(self.strata)) for row in uniq],
            dtype=np.int64,
        )
        return ids[inv.reshape(-1)]

    def weights(self, batch: pa.RecordBatch, offset: int) -> np.ndarray:
        if not self.cols.weight:
            return np.ones(batch.num_rows)
        arr = batch.column(self.cols.weight)
        if not (pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type)):
            raise self._err(
                f"weight '{self.cols.weight}' holds {arr.type}, not numbers", "weights must be numbers >= 0"
            )
        w = arr.to_numpy(zero_copy_only=False).astype(np.float64)
        bad = ~np.isfinite(w) | (w < 0)
        if bad.any():
            raise self._err(
                f"weight '{self.cols.weight}' is missing, negative or NaN at {_rows(bad, offset)}",
                "weights must be finite and >= 0",
            )
        return w

    def model(self, batch: pa.RecordBatch, side: str, y: np.ndarray, offset: int) -> dict[str, np.ndarray]:
        """One model's columns -> prediction code, score bin and per-row loss terms."""
        mc = self.cols.candidate if side == "c" else self.cols.baseline
        assert mc is not None
        what = "candidate" if side == "c" else "baseline"
        out: dict[str, np.ndarray] = {}
        s = self.scores(batch, mc.score, what, offset) if mc.score else None
        if mc.prediction:
            out["pred"] = self.class_codes(
                batch.column(mc.prediction),
                f"{what} prediction '{mc.prediction}'",
                offset,
                self.pred_books[side],
            )
        elif s is not None:
            out["pred"] = (
                (s[:, 0] >= self.p.settings.threshold).astype(np.int64)
                if s.shape[1] == 1
                else s.argmax(axis=1)
            )
        if s is None:
            return out
        if s.shape[1] == 1:
            p = s[:, 0]
            pc_ = np.clip(p, EPS, 1 - EPS)
            out["ll"] = -(y * np.log(pc_) + (1 - y) * np.log(1 - pc_))
            out["br"] = (p - y) ** 2
            out["conf"], out["hit"] = p, y.astype(np.float64)
        else:
            onehot = np.eye(self.K)[y]
            out["ll"] = -np.log(np.clip(s[np.arange(len(y)), y], EPS, 1.0))
            out["br"] = ((s - onehot) ** 2).sum(axis=1)
            out["conf"], out["hit"] = s.max(axis=1), (s.argmax(axis=1) == y).astype(np.float64)
        out["bin"] = np.searchsorted(self.edges, out["conf"], side="right")
        if self.ovr:
            for k in range(s.shape[1]):
                out[f"p{k}"] = np.searchsorted(self.edges, s[:, k], side="right")
        return out

    def regression(self, batch: pa.RecordBatch, name: str, what: str, offset: int) -> np.ndarray:
        arr = batch.column(name)
        if not (pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type)):
            raise self._err(
                f"{what} '{name}' holds {arr.type}, not numbers",
                "a regression task needs numeric labels and predictions",
            )
        x = arr.to_numpy(zero_copy_only=False).astype(np.float64)
        bad = ~np.isfinite(x)
        if bad.any():
            raise self._err(
                f"{what} '{name}' is empty or NaN at {_rows(bad, offset)}", f"drop those rows or fill {what}"
            )
        return x

    def validate(self, batch: pa.RecordBatch, offset: int) -> np.ndarray:
        """Every rule the cells obey, checked here without building cells: a query engine computes the sums,
        but its NaN and comparison semantics are its own (DuckDB 2.0 read a Parquet NaN as neither NaN nor
        above 1), so validity is never left to it. Returns the label codes."""
        y = self.class_codes(
            batch.column(self.cols.label), f"label '{self.cols.label}'", offset, self.label_book
        )
        self.weights(batch, offset)
        for side in ("c", "b"):
            mc = self.cols.candidate if side == "c" else self.cols.baseline
            if mc is None or set(mc.score) & self.produced or side == "b" and self.baseline_empty(batch):
                continue  # scores computed beside the data are checked where they are computed
            what = "candidate" if side == "c" else "baseline"
            if mc.score:
                self.scores(batch, mc.score, what, offset)
            if mc.prediction:
                self.class_codes(
                    batch.column(mc.prediction),
                    f"{what} prediction '{mc.prediction}'",
                    offset,
                    self.pred_books[side],
                )
        return y

    def cells(self, batch: pa.RecordBatch, offset: int) -> tuple[CellTable, np.ndarray]:
        n = batch.num_rows
        stratum = self.strata_ids(batch)
        w = self.weights(batch, offset)
        keys: dict[str, np.ndarray] = {"stratum": stratum}
        vals: dict[str, np.ndarray] = {"w": w}
        if self.cols.weight:  # the spread of weights within a cell, for the bootstrap (table.py)
            vals["w2"] = w * w
        if self.p.task == "regression":
            y = self.regression(batch, self.cols.label, "label", offset)
            row = np.arange(offset, offset + n, dtype=np.uint64)
            keys["bucket"] = ((row * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - BUCKET_BITS)).astype(
                np.int64
            )
            vals["y"], vals["y2"] = w * y, w * y * y
            for side, mc in (("c", self.cols.candidate), ("b", self.cols.baseline)):
                if mc is None or not mc.prediction:
                    continue
                if side == "b":
                    self.baseline_seen.add(not self.baseline_empty(batch))
                    if False in self.baseline_seen:
                        continue
                e = (
                    self.regression(
                        batch,
                        mc.prediction,
                        f"{'candidate' if side == 'c' else 'baseline'} prediction",
                        offset,
                    )
                    - y
                )
                vals[f"ae_{side}"], vals[f"se_{side}"] = w * np.abs(e), w * e * e
            return from_rows(keys, vals), y
        y = self.class_codes(
            batch.column(self.cols.label), f"label '{self.cols.label}'", offset, self.label_book
        )
        keys["y"] = y
        for side in ("c", "b"):
            if side == "b" and self.cols.baseline is not None:
                self.baseline_seen.add(not self.baseline_empty(batch))
            if side == "b" and (self.cols.baseline is None or False in self.baseline_seen):
                m: dict[str, np.ndarray] = {}
            else:
                m = self.model(batch, side, y, offset)
            zeros = np.zeros(n, dtype=np.int64)
            keys[side] = m.get("pred", zeros)
            keys[f"{side}bin"] = m.get("bin", zeros)
            if self.ovr:
                for j in range(self.K):
                    keys[f"p{j}_{side}"] = m.get(f"p{j}", zeros)
            for k in ("ll", "br", "conf", "hit"):
                if k in m:
                    vals[f"{k}_{side}"] = w * m[k]
        return from_rows(keys, vals), y
