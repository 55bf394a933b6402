"""What a live analysis knows so far, kept between looks: for each arm, the sufficient statistics of every check
(counts, sums, sums of squares, histograms) and, for requests still waiting for their label, what the model
said. Adding a window costs its own rows, not the history: a rollout asks every minute, and `serve` answers
from here.

Requests are counted once by id (log shippers deliver at least once). A label may arrive before or after its
request; a second, different label for one request is an error."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlops_gates.errors import DataError
from mlops_gates.live.ids import IdIndex, first_of_each, hashes

EPS = 1e-15
SCORE_BINS = np.linspace(0, 1, 11)[1:-1]  # deciles of a probability, for the prediction-shift check
LATENCY_BINS = np.logspace(-2, 6, 801)  # 0.01 ms to 1,000 s, 1% apart: quantiles for the report


@dataclass
class Sums:
    """A mean's sufficient statistics."""

    n: int = 0
    total: float = 0.0
    squares: float = 0.0

    def add(self, values: np.ndarray) -> None:
        self.n += len(values)
        self.total += float(values.sum())
        self.squares += float((values * values).sum())

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else float("nan")

    def variance(self, bernoulli: bool) -> float:
        if bernoulli:  # (k+1)/(n+2): a share seen as 0 or 1 early on still has width
            p = (self.total + 1) / (self.n + 2)
            return p * (1 - p)
        if self.n < 2:
            return float("inf")
        return max((self.squares - self.total * self.total / self.n) / (self.n - 1), 0.0)


class Column:
    """A growing numpy array (doubling capacity): what the model said, until the label arrives."""

    def __init__(self, dtype: type) -> None:
        self.data: np.ndarray = np.empty(1024, dtype=dtype)
        self.size = 0

    def extend(self, values: np.ndarray) -> None:
        need = self.size + len(values)
        if need > len(self.data):
            grown = np.empty(max(need, 2 * len(self.data)), dtype=self.data.dtype)
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        self.data[self.size : need] = values
        self.size = need

    def view(self) -> np.ndarray:
        return self.data[: self.size]


@dataclass
class ArmState:
    name: str
    requests: int = 0
    errors: Sums = field(default_factory=Sums)
    latency: np.ndarray = field(default_factory=lambda: np.zeros(len(LATENCY_BINS) + 1, dtype=np.int64))
    over: int = 0  # requests slower than the latency guardrail's max_ms
    timed: int = 0
    predictions: dict[str, int] = field(default_factory=dict)  # class -> count, or score decile -> count
    metrics: dict[str, Sums] = field(default_factory=dict)
    labelled: int = 0
    score: Column = field(default_factory=lambda: Column(np.float64))
    prediction: Column = field(default_factory=lambda: Column(np.float64))  # a class code or a value
    label: Column = field(default_factory=lambda: Column(np.float64))  # NaN until the label arrives
    id_chunks: list[pa.Array] = field(default_factory=list)  # request ids, in row order
    group: dict[str, Column] = field(default_factory=dict)  # fairness column -> each row's group code
    rates: dict[tuple[str, str], np.ndarray] = field(
        default_factory=dict
    )  # (column, rate) -> per group [n, k]

    def tally(self, key: tuple[str, str], groups: np.ndarray, hits: np.ndarray) -> None:
        """Add rows to a per-group rate: `groups` their codes (NaN: no group), `hits` which count."""
        known = ~np.isnan(groups)
        g = groups[known].astype(np.int64)
        size = int(g.max()) + 1 if len(g) else 0
        table = self.rates.get(key, np.zeros((0, 2), dtype=np.int64))
        if size > len(table):
            table = np.vstack([table, np.zeros((size - len(table), 2), dtype=np.int64)])
        table[:, 0] += np.bincount(g, minlength=len(table))
        table[:, 1] += np.bincount(g, weights=hits[known].astype(float), minlength=len(table)).astype(
            np.int64
        )
        self.rates[key] = table

    def ids(self) -> pa.Array:
        if len(self.id_chunks) > 1:
            self.id_chunks = [pa.concat_arrays(self.id_chunks)]
        return self.id_chunks[0]


class LiveState:
    """Canary and stable, as the logs have shown them so far."""

    def __init__(
        self,
        canary: str,
        stable: str,
        task: str,
        positive_label: object,
        metrics: tuple[str, ...],
        latency_cap: float | None,
        fairness: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.arms = (ArmState(canary), ArmState(stable))
        self.task, self.positive = task, str(positive_label)
        self.metric_names, self.latency_cap = metrics, latency_cap
        self.index = IdIndex()  # every request id seen, to its arm and row
        self.waiting: dict[str, float] = {}  # labels that came before their request: id -> label code
        self.codes: dict[str, int] = {}  # class -> code, shared by predictions and labels
        self.others = 0
        self.value_edges: np.ndarray | None = None
        self.split_expected = 0.0  # sum of the canary's share over the two arms' requests
        self.split_variance = 0.0
        self.fairness = fairness  # (column, rate) pairs the analysis judges
        self.group_codes: dict[str, dict[str, int]] = {c: {} for c, _ in fairness}  # column -> group -> code
        for arm in self.arms:
            arm.metrics = {m: Sums() for m in metrics}
            arm.group = {c: Column(np.float64) for c, _ in fairness}

    def group_names(self, column: str) -> list[str]:
        return sorted(self.group_codes[column], key=self.group_codes[column].__getitem__)

    def code(self, values: pa.ChunkedArray | pa.Array) -> np.ndarray:
        """Classes as float codes (NaN for missing); regression values as floats."""
        if self.task == "regression":
            return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
        text = pc.cast(values, pa.string())
        encoded = (
            pc.dictionary_encode(text).combine_chunks()
            if isinstance(text, pa.ChunkedArray)
            else pc.dictionary_encode(text)
        )
        local = np.array(
            [self.codes.setdefault(v, len(self.codes)) for v in encoded.dictionary.to_pylist()] + [-1]
        )
        idx = pc.fill_null(encoded.indices, len(local) - 1).to_numpy(zero_copy_only=False)
        out = local[idx].astype(np.float64)
        out[out < 0] = np.nan
        return out

    def add_requests(self, table: pa.Table, split: np.ndarray) -> None:
        """One window of requests (columns named by role), with the canary's expected share for each. Each
        request id counts the first time it is seen."""
        ids = pc.cast(table.column("request_id"), pa.string()).combine_chunks()
        if ids.null_count:
            raise DataError("a request has no id", hint="log a request_id with every request")
        h = hashes(ids)
        keep = first_of_each(h) & (self.index.find(h) < 0)
        version = pc.cast(table.column("version"), pa.string()).to_numpy(zero_copy_only=False)
        for a, arm in enumerate(self.arms):
            rows = np.flatnonzero(keep & (version == arm.name))
            if len(rows):
                self.index.add(h[rows], (arm.requests + np.arange(len(rows))) * 2 + a)
                self._take(a, arm, table.take(pa.array(rows)), ids.take(pa.array(rows)))
                self.split_expected += float(split[rows].sum())
                self.split_variance += float((split[rows] * (1 - split[rows])).sum())
        self.others += int((keep & ~np.isin(version, [a.name for a in self.arms])).sum())

    def _take(self, a: int, arm: ArmState, t: pa.Table, ids: pa.Array) -> None:
        """Requests new to this arm."""
        start, n = arm.requests, t.num_rows
        arm.requests += n
        arm.id_chunks.append(ids)
        arm.score.extend(_floats(t, "score", n))
        arm.prediction.extend(
            self.code(t.column("prediction")) if "prediction" in t.column_names else np.full(n, np.nan)
        )
        arm.label.extend(np.full(n, np.nan))
        if "error" in t.column_names:
            arm.errors.add(
                pc.fill_null(pc.cast(t.column("error"), pa.bool_()), False)
                .to_numpy(zero_copy_only=False)
                .astype(float)
            )
        if "latency" in t.column_names:
            lat = _floats(t, "latency", n)
            lat = lat[~np.isnan(lat)]
            arm.timed += len(lat)
            arm.latency += np.bincount(np.searchsorted(LATENCY_BINS, lat), minlength=len(arm.latency))
            arm.over += int((lat > self.latency_cap).sum()) if self.latency_cap is not None else 0
        self._tally_predictions(arm, t)
        for column in arm.group:
            codes = self._groups(column, t)
            arm.group[column].extend(codes)
            if (column, "selection_rate") in self.fairness:
                chosen = arm.prediction.view()[start:] == self.codes.get(self.positive, -2)
                arm.tally((column, "selection_rate"), codes, chosen)
        if "label" in t.column_names:
            self._label(a, np.arange(start, start + n), self.code(t.column("label")))
        if self.waiting:  # labels that came before their requests
            waited = np.flatnonzero(
                pc.is_in(ids, value_set=pa.array(list(self.waiting))).to_numpy(zero_copy_only=False)
            )
            codes = np.array([self.waiting.pop(i) for i in ids.take(pa.array(waited)).to_pylist()])
            self._label(a, start + waited, codes)

    def _groups(self, column: str, t: pa.Table) -> np.ndarray:
        """Each row's group in a fairness column, as a code (NaN where the log has none)."""
        role = f"group:{column}"
        if role not in t.column_names:
            return np.full(t.num_rows, np.nan)
        text = pc.cast(t.column(role), pa.string()).to_pylist()
        names = self.group_codes[column]
        return np.array([np.nan if v is None else names.setdefault(v, len(names)) for v in text], dtype=float)

    def _tally_predictions(self, arm: ArmState, t: pa.Table) -> None:
        """The prediction-shift check's histogram: score deciles (binary), classes, or value deciles."""
        if self.task == "binary" and "score" in t.column_names:
            s = _floats(t, "score", t.num_rows)
            counts = np.bincount(np.searchsorted(SCORE_BINS, s[~np.isnan(s)], side="right"))
            tally = {str(k): int(c) for k, c in enumerate(counts) if c}
        elif self.task == "regression" and "prediction" in t.column_names:
            v = _floats(t, "prediction", t.num_rows)
            v = v[~np.isnan(v)]
            if self.value_edges is None and len(v):  # deciles of the first window, kept for every later one
                self.value_edges = np.unique(np.quantile(v, SCORE_BINS))
            edges = self.value_edges if self.value_edges is not None else SCORE_BINS
            counts = np.bincount(np.searchsorted(edges, v, side="right"))
            tally = {str(k): int(c) for k, c in enumerate(counts) if c}
        elif "prediction" in t.column_names:
            vc = pc.value_counts(pc.fill_null(pc.cast(t.column("prediction"), pa.string()), ""))
            tally = dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True))
        else:
            return
        for k, c in tally.items():
            arm.predictions[k] = arm.predictions.get(k, 0) + c

    def add_labels(self, table: pa.Table) -> None:
        """Labels that arrived (request_id, label): joined to their requests, or kept until they come."""
        ids = pc.cast(table.column("request_id"), pa.string()).combine_chunks()
        codes = self.code(table.column("label"))
        where = self.index.find(hashes(ids)) if ids.null_count == 0 else np.full(len(ids), -1)
        for a in (0, 1):
            mine = (where >= 0) & (where % 2 == a)
            self._label(a, where[mine] // 2, codes[mine])
        early = np.flatnonzero((where < 0) & ~np.isnan(codes))
        for k, i in zip(early.tolist(), ids.take(pa.array(early)).to_pylist(), strict=True):
            if i is not None and self.waiting.setdefault(i, codes[k]) != codes[k]:
                raise DataError(f"request {i!r} has two different labels", hint="a request has one outcome")

    def _label(self, a: int, rows: np.ndarray, codes: np.ndarray) -> None:
        arm = self.arms[a]
        known = ~np.isnan(codes)
        rows, codes = rows[known], codes[known]
        order = np.argsort(rows, kind="stable")  # a label repeated within one batch counts once
        rows, codes = rows[order], codes[order]
        first = np.concatenate([[True], rows[1:] != rows[:-1]]) if len(rows) else np.array([], dtype=bool)
        if len(rows) and (codes[1:][~first[1:]] != codes[:-1][~first[1:]]).any():
            raise DataError("a request has two different labels", hint="a request has one outcome")
        rows, codes = rows[first], codes[first]
        had = arm.label.view()[rows]
        clash = ~np.isnan(had) & (had != codes)
        if clash.any():
            rid = arm.ids()[int(rows[clash][0])].as_py()
            raise DataError(
                f"request {rid!r} has two different labels",
                hint="a request has one outcome: fix the labelling job",
            )
        new = np.isnan(had)
        rows, codes = rows[new], codes[new]
        if not len(rows):
            return
        arm.label.view()[rows] = codes
        arm.labelled += len(rows)
        pred = arm.prediction.view()[rows]
        positive = self.codes.get(self.positive, -2)
        for column, rate in self.fairness:
            groups = arm.group[column].view()[rows]
            if rate == "tpr":
                arm.tally((column, rate), np.where(codes == positive, groups, np.nan), pred == positive)
            elif rate == "accuracy":
                arm.tally((column, rate), groups, pred == codes)
        for name in self.metric_names:
            values = self._per_row(name, arm, rows, codes)
            if np.isnan(values).any():
                raise DataError(
                    f"a labelled request of {arm.name} has no {'score' if name in ('log_loss', 'brier') else 'prediction'}",
                    hint="log the served model's output on every request",
                )
            arm.metrics[name].add(values)

    def _per_row(self, metric: str, arm: ArmState, rows: np.ndarray, label: np.ndarray) -> np.ndarray:
        if metric in ("log_loss", "brier"):
            score = arm.score.view()[rows]
            y = (label == self.codes.get(self.positive, -2)).astype(float)
            if metric == "brier":
                return (score - y) ** 2
            p = np.clip(score, EPS, 1 - EPS)
            return -(y * np.log(p) + (1 - y) * np.log(1 - p))
        pred = arm.prediction.view()[rows]
        if metric == "mae":
            return np.abs(pred - label)
        return (pred == label).astype(float)

    def latency_quantile(self, a: int, q: float) -> float:
        hist = self.arms[a].latency
        if not hist.sum():
            return float("nan")
        k = int(np.searchsorted(np.cumsum(hist), q * hist.sum()))
        return float(LATENCY_BINS[min(k, len(LATENCY_BINS) - 1)])


def _floats(t: pa.Table, role: str, n: int) -> np.ndarray:
    if role not in t.column_names:
        return np.full(n, np.nan)
    return pc.cast(t.column(role), pa.float64()).to_numpy(zero_copy_only=False)
