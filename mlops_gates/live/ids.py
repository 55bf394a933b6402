"""Request ids as 64-bit hashes in a sorted array, so that finding a window's ids among the millions already
seen costs the window, not the history (a Python set of a million strings takes seconds to build; Arrow's
hash joins rebuild their table on every call). DuckDB computes the hashes, vectorised.

Two different ids with one hash would be counted as one request; at a million ids the chance is about 1 in
10^7, and whoever can write such ids into the logs can write any label there too."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def hashes(ids: pa.Array) -> np.ndarray:
    import duckdb

    con = duckdb.connect()  # one per call: serve's threads never share a connection
    try:
        con.register("ids_table", pa.table({"id": ids}))
        found: np.ndarray = con.execute("SELECT hash(id) AS h FROM ids_table").fetchnumpy()["h"]
        return found
    finally:
        con.close()


class IdIndex:
    """Hash -> code (an arm and a row), sorted by hash."""

    def __init__(self) -> None:
        self.keys = np.empty(0, dtype=np.uint64)
        self.codes = np.empty(0, dtype=np.int64)

    def find(self, h: np.ndarray) -> np.ndarray:
        """Each hash's code, or -1 where it is not here."""
        out = np.full(len(h), -1, dtype=np.int64)
        if not len(self.keys) or not len(h):
            return out
        order = np.argsort(h)  # sorted queries walk the keys in order: several times faster than random ones
        sorted_h = h[order]
        pos = np.minimum(np.searchsorted(self.keys, sorted_h), len(self.keys) - 1)
        hit = self.keys[pos] == sorted_h
        out[order[hit]] = self.codes[pos[hit]]
        return out

    def add(self, h: np.ndarray, codes: np.ndarray) -> None:
        """New hashes (none already here, none twice)."""
        order = np.argsort(h)
        h, codes = h[order], codes[order]
        at = np.searchsorted(self.keys, h)
        self.keys = np.insert(self.keys, at, h)
        self.codes = np.insert(self.codes, at, codes)


def first_of_each(h: np.ndarray) -> np.ndarray:
    """True for the first row of each hash in a window (a log shipper may deliver a request twice)."""
    keep = np.zeros(len(h), dtype=bool)
    keep[np.unique(h, return_index=True)[1]] = True
    return keep
