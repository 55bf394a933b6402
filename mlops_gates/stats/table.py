"""A sparse table of cells (integer keys) with per-cell sums: what every metric is computed from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class CellTable:
    """keys: name -> int array (one entry per cell); sums: name -> float array; n: rows per cell."""

    keys: dict[str, np.ndarray]
    sums: dict[str, np.ndarray]
    n: np.ndarray

    def __len__(self) -> int:
        return len(self.n)

    def groupby(self, names: tuple[str, ...]) -> CellTable:
        """Marginalise onto `names` (a multinomial's marginal is multinomial, so resampling stays exact)."""
        if not names:
            return CellTable(
                {}, {k: np.array([v.sum()]) for k, v in self.sums.items()}, np.array([self.n.sum()])
            )
        keys, inv = _unique_rows([self.keys[k] for k in names])
        m = len(keys[0]) if keys else 0
        return CellTable(
            dict(zip(names, keys, strict=True)),
            {k: np.bincount(inv, weights=v, minlength=m) for k, v in self.sums.items()},
            np.bincount(inv, weights=self.n, minlength=m).astype(np.int64),
        )

    def merge(self, other: CellTable) -> CellTable:
        """Add another table's cells (a later batch or another shard): counts and sums add up exactly."""
        if not len(self):
            return other
        names = tuple(self.keys)
        both = CellTable(
            {k: np.concatenate([self.keys[k], other.keys[k]]) for k in names},
            {k: np.concatenate([self.sums[k], other.sums[k]]) for k in self.sums},
            np.concatenate([self.n, other.n]),
        )
        return both.groupby(names)


def _unique_rows(columns: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """The distinct key tuples in lexicographic order, and each row's index among them. Packs the keys into
    one int64 code when their ranges allow (a 1-D unique is several times faster than a row-wise one)."""
    lo = [int(c.min()) if len(c) else 0 for c in columns]
    span = [int(c.max()) - low + 1 if len(c) else 1 for c, low in zip(columns, lo, strict=True)]
    if float(np.prod([float(x) for x in span])) < 2.0**62:
        code = np.zeros(len(columns[0]), dtype=np.int64)
        for c, low, width in zip(columns, lo, span, strict=True):
            code = code * width + (c.astype(np.int64) - low)
        uniq, inv = np.unique(code, return_inverse=True)
        out = []
        for low, width in zip(reversed(lo), reversed(span), strict=True):
            out.append(uniq % width + low)
            uniq = uniq // width
        return out[::-1], inv.reshape(-1)
    stacked = np.stack(columns, axis=1)
    rows, inv = np.unique(stacked, axis=0, return_inverse=True)
    return [rows[:, i] for i in range(rows.shape[1])], inv.reshape(-1)


def from_rows(keys: dict[str, np.ndarray], values: dict[str, np.ndarray]) -> CellTable:
    rows = len(next(iter(keys.values())))
    return CellTable(keys, values, np.ones(rows, dtype=np.int64)).groupby(tuple(keys))


def replicate_weights(
    table: CellTable, strata: np.ndarray, replicates: int, seed: int | tuple[int, ...]
) -> np.ndarray:
    """Row bootstrap, stratified, as per-cell multipliers: row r times a cell's sum is its sum in replicate r.

    A stratum's resample is a multinomial over its cells (its rows are exchangeable within a cell, so a
    cell drawn k times out of n scales by k / n). Small tables draw the multinomial directly; tables with
    about as many cells as rows draw row indices, which is the same distribution and cheaper there.

    Weighted rows are not exchangeable within a cell: k rows drawn from it carry a random sum of weights, not
    k times their mean. With the weights' squares summed per cell (`w2`), that sum is drawn from a gamma
    distribution with its exact mean and variance (k w-bar, k s_w^2), so the spread of weights within cells
    enters every weighted metric's variance; without it (unweighted rows) the multiplier is k / n.
    """
    rng = np.random.default_rng(seed)
    w = np.empty((replicates, len(table)), dtype=np.float64)
    n = table.n
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
        counts = n[idx]
        total = int(counts.sum())
        if len(idx) * 12 < total:
            draws = rng.multinomial(total, counts / total, size=replicates)
        else:
            cell_of_row = np.repeat(np.arange(len(idx)), counts)
            draws = np.empty((replicates, len(idx)), dtype=np.int64)
            chunk = max(1, 4_000_000 // max(total, 1))
            for r0 in range(0, replicates, chunk):
                r1 = min(replicates, r0 + chunk)
                rows = cell_of_row[rng.integers(0, total, size=(r1 - r0, total))]
                rows += (np.arange(r1 - r0) * len(idx))[:, None]
                draws[r0:r1] = np.bincount(rows.ravel(), minlength=(r1 - r0) * len(idx)).reshape(
                    r1 - r0, len(idx)
                )
        w[:, idx] = draws / counts
    if "w2" in table.sums:
        _weight_spread(w, table, rng)
    return w


def _weight_spread(w: np.ndarray, table: CellTable, rng: np.random.Generator) -> None:
    """Turn k / n multipliers into draws of the k rows' weight sum over the cell's weight sum (in place)."""
    n = table.n.astype(np.float64)
    sw, sw2 = table.sums["w"], table.sums["w2"]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n > 0, sw / np.maximum(n, 1), 0.0)
        var = np.maximum(np.where(n > 0, sw2 / np.maximum(n, 1), 0.0) - mean * mean, 0.0)
    spread = np.flatnonzero((var > 1e-12 * np.maximum(mean * mean, 1e-300)) & (sw > 0))
    if not len(spread):
        return
    k = w[:, spread] * n[spread]  # rows drawn from each cell, per replicate
    m, v = mean[spread], var[spread]
    draws = rng.gamma(k * (m * m / v), v / m)  # shape 0 (no row drawn) gives 0
    w[:, spread] = draws / sw[spread]
