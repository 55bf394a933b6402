"""The one query for a policy, in SQL every engine runs: a GROUP BY on the raw label, prediction and group
values plus score bins, summing what the metrics need; and its result turned into cells here, through the
streaming pass's own codebooks, on a few thousand groups."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa

from mlops_gates.errors import DataError, GateError
from mlops_gates.policy import ModelColumns, Policy
from mlops_gates.stats.encode import Encoder
from mlops_gates.stats.engines import Engine, Invalid
from mlops_gates.stats.table import CellTable

EPS = "CAST('1e-15' AS DOUBLE)"  # the streaming pass's clip, as an exact double


def _double(x: float) -> str:
    """A float literal that parses to exactly this double in every engine (repr round-trips)."""
    return f"CAST('{float(x)!r}' AS DOUBLE)"


def _bin(x: str, edges: np.ndarray) -> str:
    """The number of edges <= x (numpy's searchsorted, side='right') as a balanced tree of comparisons."""

    def tree(lo: int, hi: int) -> str:  # the count lies in [lo, hi]
        if lo == hi:
            return str(lo)
        mid = (lo + hi + 1) // 2  # count >= mid  <=>  x >= edges[mid - 1]
        return f"CASE WHEN {x} >= {_double(edges[mid - 1])} THEN {tree(mid, hi)} ELSE {tree(lo, mid - 1)} END"

    return tree(0, len(edges))


class _Sql:
    """Builds the one query for a policy, given the engine's identifier quoting and the columns' kinds."""

    def __init__(self, enc: Encoder, kinds: dict[str, str], quote: Callable[[str], str]):
        self.p, self.enc, self.kinds, self.q = enc.p, enc, kinds, quote
        self.rows: list[str] = []  # inner SELECT: the raw values a row needs, renamed
        self.derived: list[str] = []  # middle SELECT: keys computed from them
        self.keys: list[str] = []  # outer GROUP BY
        self.sums: list[str] = []  # outer aggregates
        self.flags: list[tuple[str, str]] = []  # (side, condition) that makes a row invalid: one bit each
        self.small: list[
            tuple[str, int]
        ] = []  # integer keys in [0, most] (name, most), packed into one BIGINT
        self.layout: list[tuple[str, int, int]] = []  # (name, shift, most) of each key packed into `pk`

    def _isnull(self, col: str) -> str:
        c = self.q(col)
        return f"({c} IS NULL OR isnan({c}))" if self.kinds[col] == "float" else f"{c} IS NULL"

    def _number(self, col: str) -> str:
        if self.kinds[col] not in ("float", "int"):
            raise Invalid(f"'{col}' is not numeric")
        return f"CAST({self.q(col)} AS DOUBLE)"

    def _flag(self, condition: str, side: str = "") -> None:
        self.flags.append((side, condition))

    def _key(self, expr: str, name: str, most: int) -> None:
        """A key computed from a row's values, an integer in [0, most]."""
        self.derived.append(f"{expr} AS {name}")
        self.small.append((name, most))

    def _packed(self) -> str:
        """The small keys as one BIGINT (grouping on one key instead of many took a 10M-row query from 7 s to
        under half that); those that do not fit in 62 bits stay keys of their own."""
        shift, terms = 0, []
        for name, most in self.small:
            bits = (most + 1).bit_length()  # most + 1 stands for NULL (a row that breaks a rule)
            if shift + bits > 62:
                self.keys.append(name)
                continue
            self.layout.append((name, shift, most))
            terms.append(f"CAST(COALESCE({name}, {most + 1}) AS BIGINT) * {1 << shift}")
            shift += bits
        self.keys.append("pk")
        return f"({' + '.join(terms) or '0'}) AS pk"

    def bits(self, side: str) -> int:
        """The flag bits that come from one side's columns."""
        return sum(1 << i for i, (s, _) in enumerate(self.flags) if s == side)

    def build(self, src: str) -> str:
        c = self.p.columns
        self.rows += [
            f"{self.q(c.label)} AS y",
            f"({self._number(c.weight)}) AS w" if c.weight else "1.0 AS w",
        ]
        self.keys.append("y")
        self._flag(self._isnull(c.label))
        if c.weight:
            w = self._number(c.weight)
            self._flag(f"{w} IS NULL OR isnan({w}) OR {w} < 0 OR {w} = CAST('Infinity' AS DOUBLE)")
        for i, g in enumerate(self.enc.group_columns):
            self.rows.append(f"{self.q(g)} AS g{i}")
            self.keys.append(f"g{i}")
        self.side("c", c.candidate)
        if c.baseline is not None:
            self.side("b", c.baseline)
            names = ([c.baseline.prediction] if c.baseline.prediction else []) + list(c.baseline.score)
            self.rows.append(
                "CASE WHEN "
                + " AND ".join(f"{self.q(n)} IS NULL" for n in names)
                + " THEN 1 ELSE 0 END AS bnone"
            )
        else:
            self.rows.append("0 AS bnone")
        bad = " + ".join(f"CASE WHEN {f} THEN {1 << i} ELSE 0 END" for i, (_, f) in enumerate(self.flags))
        self.rows.append(f"({bad}) AS bad")
        self.small += [("bnone", 1), ("bad", (1 << len(self.flags)) - 1)]
        inner = f"SELECT {', '.join(self.rows)} FROM {src}"
        middle = f"SELECT *{''.join(', ' + d for d in self.derived)} FROM ({inner}) r"
        middle = f"SELECT *, {self._packed()} FROM ({middle}) m"
        return (
            f"SELECT {', '.join(self.keys)}, COUNT(*) AS n, {', '.join(['SUM(w) AS sw', *self.sums])}"
            + (", SUM(w * w) AS sw2" if c.weight else "")
            + f" FROM ({middle}) t GROUP BY {', '.join(self.keys)}"
        )

    def side(self, s: str, mc: ModelColumns | None) -> None:
        assert mc is not None
        if mc.prediction:
            self.rows.append(f"{self.q(mc.prediction)} AS pr_{s}")
            self.keys.append(f"pr_{s}")
            self._flag(self._isnull(mc.prediction), s)
        if not mc.score:
            return
        cols = [f"s{k}_{s}" for k in range(len(mc.score))]
        for name, col in zip(mc.score, cols, strict=True):
            x = self._number(name)
            self.rows.append(f"{x} AS {col}")
            self._flag(f"{x} IS NULL OR isnan({x}) OR {x} < 0 OR {x} > 1", s)
        if len(cols) > 1:
            self._flag(f"abs({' + '.join(self._number(n) for n in mc.score)} - 1) > 0.001", s)
        one = f"GREATEST(LEAST({cols[0]}, 1 - {EPS}), {EPS})"
        if len(cols) == 1:  # binary: the sums for a positive and for a negative label
            conf = cols[0]
            if not mc.prediction:
                self._key(
                    f"CASE WHEN {conf} >= {_double(self.p.settings.threshold)} THEN 1 ELSE 0 END",
                    f"pc_{s}",
                    1,
                )
            self.sums += [
                f"SUM(w * -ln({one})) AS l1_{s}",
                f"SUM(w * -ln(1 - {one})) AS l0_{s}",
                f"SUM(w * {conf}) AS m1_{s}",
                f"SUM(w * {conf} * {conf}) AS q_{s}",
            ]
        else:  # multiclass: per-class sums; the label picks its class's afterwards
            conf = f"GREATEST({', '.join(cols)})"
            argmax = (
                "CASE " + " ".join(f"WHEN {col} >= {conf} THEN {k}" for k, col in enumerate(cols)) + " END"
            )
            self._key(argmax, f"am_{s}", len(cols) - 1)
            for k, col in enumerate(cols):
                self.sums += [
                    f"SUM(w * -ln(GREATEST(LEAST({col}, 1), {EPS}))) AS l{k}_{s}",
                    f"SUM(w * {col}) AS m{k}_{s}",
                ]
            self.sums += [
                f"SUM(w * ({' + '.join(f'{c} * {c}' for c in cols)})) AS q_{s}",
                f"SUM(w * {conf}) AS cf_{s}",
            ]
            if self.enc.ovr:  # one-vs-rest ROC AUC: each class's score bin
                for k, col in enumerate(cols):
                    self._key(_bin(col, self.enc.edges), f"pb{k}_{s}", len(self.enc.edges))
        self._key(_bin(conf, self.enc.edges), f"bin_{s}", len(self.enc.edges))


INTEGERS = {
    *(p + t for p in ("", "u") for t in ("tinyint", "smallint", "integer", "bigint", "hugeint")),
    *("int", "long", "short", "byte"),
}


def _kinds(types: dict[str, str]) -> dict[str, str]:
    """Engine type names -> float / int / bool / string / other."""
    out = {}
    for name, t in types.items():
        t = t.lower()
        if t in ("double", "float", "real") or t.startswith("decimal"):
            out[name] = "float"
        elif t in INTEGERS:
            out[name] = "int"
        elif t.startswith("bool"):
            out[name] = "bool"
        elif t in ("varchar", "string", "text"):
            out[name] = "string"
        else:
            out[name] = "other"
    return out


def query(policy: Policy, eng: Engine, enc: Encoder) -> tuple[pa.Table, _Sql]:
    """The engine's groups for the policy, computed where the data lives. Reads `enc`'s settings and changes
    none of its codebooks, so it may run beside the streaming pass. Raises Invalid when the engine fails."""
    ds = policy.eval_data
    try:
        sql = _Sql(enc, _kinds(eng.types(ds)), eng.quote)
        return eng.query(ds, sql.build), sql
    except (Invalid, GateError):  # GateError: a model that predicts beside the data failed
        raise
    except Exception as exc:  # the engine could not read or cast a value: the streaming pass says which
        raise Invalid(f"{eng.name} could not compute the statistics: {str(exc).splitlines()[0]}") from None


def tabulate(policy: Policy, enc: Encoder, res: pa.Table, sql: _Sql) -> tuple[CellTable, int]:
    """The cell table and row count from the engine's groups, through the streaming pass's codebooks.
    Raises Invalid when the data breaks a rule."""
    ds = policy.eval_data
    if not res.num_rows:
        raise DataError(
            "has no rows", where=str(ds.path), hint="write the evaluation rows to it, or fix the path"
        )
    col = {n: res.column(n).combine_chunks() for n in res.column_names}
    pk = col["pk"].to_numpy(zero_copy_only=False).astype(np.int64)
    for name, shift, most in sql.layout:
        key = (pk >> shift) & ((1 << (most + 1).bit_length()) - 1)
        col[name] = pa.array(key, mask=key > most)  # most + 1: the key was NULL
    bnone = col["bnone"].to_numpy(zero_copy_only=False).astype(bool)
    has_baseline = policy.columns.baseline is not None and not bnone.all()
    if policy.columns.baseline is not None:
        enc.baseline_seen.add(has_baseline)
    bad = col["bad"].to_numpy(zero_copy_only=False).astype(np.int64)
    if has_baseline and bnone.any():
        raise Invalid("the baseline is empty in some rows")
    if not has_baseline:  # no baseline: its columns' flags do not count
        bad = bad & ~sql.bits("b")
    if bad.any():
        raise Invalid(f"{int(res.column('n').to_numpy()[bad != 0].sum())} rows break a rule")
    try:
        return _table(policy, enc, col, has_baseline), int(np.sum(col["n"].to_numpy()))
    except DataError as exc:  # a raw value the codebooks refuse; the streaming pass names its rows
        raise Invalid(exc.message) from None


def _table(policy: Policy, enc: Encoder, col: dict[str, pa.Array], has_baseline: bool) -> CellTable:
    """The engine's groups -> cells: raw values through the codebooks, per-label sums picked by the label."""

    def num(name: str) -> np.ndarray:
        return np.asarray(col[name].to_numpy(zero_copy_only=False), dtype=np.float64)

    def ints(name: str) -> np.ndarray:
        return np.asarray(col[name].to_numpy(zero_copy_only=False), dtype=np.int64)

    m = len(col["n"])
    if enc.group_columns:
        names = list(enc.group_columns)
        stratum = enc.strata_ids(
            pa.RecordBatch.from_arrays([col[f"g{i}"] for i in range(len(names))], names=names)
        )
    else:
        enc.strata.setdefault((), 0)
        stratum = np.zeros(m, dtype=np.int64)
    y = enc.class_codes(col["y"], f"label '{policy.columns.label}'", 0, enc.label_book)
    w = num("sw")
    keys: dict[str, np.ndarray] = {"stratum": stratum, "y": y}
    vals: dict[str, np.ndarray] = {"w": w}
    if policy.columns.weight:
        vals["w2"] = num("sw2")
    zeros = np.zeros(m, dtype=np.int64)
    for s, mc in (("c", policy.columns.candidate), ("b", policy.columns.baseline if has_baseline else None)):
        scored = mc is not None and bool(mc.score)
        if mc is not None and mc.prediction:
            what = f"{'candidate' if s == 'c' else 'baseline'} prediction '{mc.prediction}'"
            keys[s] = enc.class_codes(col[f"pr_{s}"], what, 0, enc.pred_books[s])
        elif scored:
            keys[s] = ints(f"pc_{s}") if policy.task == "binary" else ints(f"am_{s}")
        else:
            keys[s] = zeros
        keys[f"{s}bin"] = ints(f"bin_{s}") if scored else zeros
        if enc.ovr:
            for j in range(enc.K):
                keys[f"p{j}_{s}"] = ints(f"pb{j}_{s}") if scored else zeros
        if not scored:
            continue
        if policy.task == "binary":
            yf, m1 = y.astype(np.float64), num(f"m1_{s}")
            vals[f"ll_{s}"] = np.where(y == 1, num(f"l1_{s}"), num(f"l0_{s}"))
            vals[f"br_{s}"] = num(f"q_{s}") - 2 * yf * m1 + yf * w  # sum of w (p - y)^2, expanded
            vals[f"conf_{s}"], vals[f"hit_{s}"] = m1, yf * w
        else:
            at_y = np.arange(m), y
            vals[f"ll_{s}"] = np.stack([num(f"l{k}_{s}") for k in range(enc.K)], axis=1)[at_y]
            means = np.stack([num(f"m{k}_{s}") for k in range(enc.K)], axis=1)[at_y]
            vals[f"br_{s}"] = num(f"q_{s}") - 2 * means + w  # sum of w |s - onehot(y)|^2, expanded
            vals[f"conf_{s}"] = num(f"cf_{s}")
            vals[f"hit_{s}"] = np.where(ints(f"am_{s}") == y, w, 0.0)
    # raw values that share a code (1 and "1") fall into one cell
    return CellTable(keys, vals, ints("n")).groupby(tuple(keys))
