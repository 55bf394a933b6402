"""The integrity gate's per-row hashes (a feature hash and the label: 9 to 16 bytes a row), held in memory up to a
bound and past it spilled to disk in buckets by hash: equal hashes share a bucket, so duplicates, conflicting
labels and overlap with training are counted one bucket at a time, and 100M rows need a sixteenth of the memory."""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np

BUCKETS = 16  # by the hash's top 4 bits
HELD_ROWS = 4_000_000  # held in memory before the first spill (about 36 MB)


class RowHashes:
    """Feature hashes (uint64) with each row's label, gathered batch by batch."""

    def __init__(self, held_rows: int | None = None) -> None:
        self.held: list[tuple[np.ndarray, np.ndarray]] = []
        self.held_rows, self.limit = 0, held_rows or HELD_ROWS
        self.folder: Path | None = None  # the buckets on disk, once spilled
        self.label_dtype: np.dtype | None = None

    @classmethod
    def of(cls, fh: np.ndarray, y: np.ndarray) -> RowHashes:
        out = cls(held_rows=len(fh) + 1)
        out.add(fh, y)
        return out

    def add(self, fh: np.ndarray, y: np.ndarray) -> None:
        self.held.append((fh, y))
        self.held_rows += len(fh)
        if self.held_rows >= self.limit:
            self._spill()

    def _spill(self) -> None:
        fh, y = self._held()
        self.held, self.held_rows = [], 0
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="mlops-gates-rows-"))
            weakref.finalize(self, shutil.rmtree, self.folder, True)
            self.label_dtype = np.dtype(np.float64 if y.dtype.kind == "f" else np.int64)
        bucket = (fh >> np.uint64(64 - 4)).astype(np.uint8)
        order = np.argsort(bucket, kind="stable")  # a radix sort on one byte
        edges = np.searchsorted(bucket[order], np.arange(BUCKETS + 1))
        for k in range(BUCKETS):
            rows = order[edges[k] : edges[k + 1]]
            if len(rows):
                with open(self.folder / f"{k}.fh", "ab") as f:
                    fh[rows].tofile(f)
                with open(self.folder / f"{k}.y", "ab") as f:
                    y[rows].astype(self.label_dtype).tofile(f)

    def _held(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.held:
            return np.zeros(0, np.uint64), np.zeros(0, self.label_dtype or np.int64)
        return np.concatenate([f for f, _ in self.held]), np.concatenate([y for _, y in self.held])

    def parts(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(feature hashes, labels) a part at a time; a hash's every occurrence lies in one part."""
        if self.folder is None:
            yield self._held()
            return
        if self.held:
            self._spill()
        for k in range(BUCKETS):
            if (self.folder / f"{k}.fh").exists():
                yield (
                    np.fromfile(self.folder / f"{k}.fh", dtype=np.uint64),
                    np.fromfile(self.folder / f"{k}.y", dtype=self.label_dtype),
                )

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Every row's hash and label in memory (a shard's state file carries them)."""
        parts = list(self.parts())
        return np.concatenate([f for f, _ in parts]), np.concatenate([y for _, y in parts])
