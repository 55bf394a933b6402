"""Train/serve skew: what the online store served, from the serving layer's log, against what Feast's offline
store holds for the same entities at the same times (fetched point-in-time correct). Per feature: the share of
served values that differ from the offline value (judged by the exact binomial test, with its Clopper-Pearson
interval), and the distance between the two distributions (PSI, as the integrity gate measures drift); and
freshness, the share of rows served with values older than the feature views' TTL (or `max_age`). A comparison
that cannot be made (no log, no such feature, rows that do not line up) is an ERROR, never a pass."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlops_gates.errors import GateError
from mlops_gates.gates.base import Context, GateResult
from mlops_gates.gates.judge import Check, judge, summarise
from mlops_gates.policy import FeastSource, GateSpec, dataset, seconds
from mlops_gates.stats.drift import psi

TIME, SEEN = "event_timestamp", "feature_timestamp"  # when a row was served; when its values were computed


def _source(spec: GateSpec, ctx: Context) -> FeastSource:
    base = Path(ctx.policy.path).parent
    own = spec.config.get("feast")
    src = ctx.policy.eval_data.feast
    if own is not None:
        features = own["features"] if isinstance(own["features"], str) else tuple(own["features"])
        repo = Path(own["repo"]) if Path(own["repo"]).is_absolute() else base / own["repo"]
        src = FeastSource(repo, features, src.entities if src else repo, src.env if src else None)
    if src is None:
        raise GateError(
            "a skew gate compares served features with Feast's offline store, and none is named",
            hint="give the gate feast: {repo, features}, or take data.eval from Feast",
        )
    return src


def _offline(src: FeastSource, served: pa.Table, tmp: Path) -> tuple[pa.Table, dict[str, Any]]:
    """Feast's offline values for the served rows' entities and times, in the served rows' order."""
    from mlops_gates.data.feature_store import fetch

    entities = tmp / "served-entities.parquet"
    pq.write_table(served.drop_columns([c for c in (SEEN,) if c in served.column_names]), entities)
    out = tmp / "offline.parquet"
    answer = fetch(src, entities, out, keys_only=True)
    offline = pq.read_table(out)
    if offline.num_rows != served.num_rows:
        raise GateError(f"Feast returned {offline.num_rows} rows for {served.num_rows} served rows")
    return offline, answer


def _differs(a: pa.ChunkedArray, b: pa.ChunkedArray, tol: float) -> np.ndarray:
    """Row by row: does the served value differ from the offline one? Both missing is no difference."""
    a_null = np.asarray(a.is_null())
    b_null = np.asarray(b.is_null())
    if pa.types.is_integer(a.type) or pa.types.is_floating(a.type):
        x = np.asarray(pc.cast(a, pa.float64()).fill_null(np.nan))
        y = np.asarray(pc.cast(b, pa.float64()).fill_null(np.nan))
        same = np.isclose(x, y, rtol=tol, atol=tol)
    else:
        same = np.array([u == v for u, v in zip(a.to_pylist(), b.to_pylist(), strict=True)])
    return np.where(a_null | b_null, a_null != b_null, ~same)


def _psi(served: pa.ChunkedArray, offline: pa.ChunkedArray) -> float:
    """PSI of the served values against the offline ones: offline deciles for numbers, categories otherwise."""
    s, o = served.drop_null(), offline.drop_null()
    if pa.types.is_integer(s.type) or pa.types.is_floating(s.type):
        ref = np.asarray(pc.cast(o, pa.float64()))
        cuts = np.unique(np.quantile(ref, np.arange(1, 10) / 10)) if len(ref) else np.array([])
        cur = np.asarray(pc.cast(s, pa.float64()))
        m = len(cuts) + 1
        return psi(
            np.bincount(np.searchsorted(cuts, ref), minlength=m),
            np.bincount(np.searchsorted(cuts, cur), minlength=m),
        )
    cats = sorted(set(map(str, o.to_pylist())) | set(map(str, s.to_pylist())))
    index = {c: i for i, c in enumerate(cats)}

    def counts(arr: pa.ChunkedArray) -> np.ndarray:
        return np.bincount([index[str(v)] for v in arr.to_pylist()], minlength=len(cats))

    return psi(counts(o), counts(s))


def _share(
    metric: str, scope: str, k: int, n: int, cfg_key: str, cfg: dict[str, Any], sev: str, note: str
) -> Check:
    """k of n rows: judged by the exact binomial test, reported with the Clopper-Pearson interval."""
    return Check(metric, scope, np.array([k / n]), n, "<=", cfg[cfg_key], sev, note=note, counts=(k, n))


def _freshness(served: pa.Table, answer: dict[str, Any], cfg: dict[str, Any], sev: str) -> list[Check]:
    if "max_stale_rate" not in cfg:
        return []
    if SEEN not in served.column_names:
        raise GateError(f"freshness needs the served values' own time: the log has no {SEEN} column")
    ttls = [v["ttl_seconds"] for v in answer["feature_views"] if v.get("ttl_seconds")]
    limit = seconds(cfg["max_age"]) if "max_age" in cfg else (min(ttls) if ttls else None)
    if limit is None:
        raise GateError("the feature views have no TTL: give the skew gate max_age")
    micros = pc.cast(pc.subtract(served[TIME], served[SEEN]), pa.int64()).to_numpy(zero_copy_only=False)
    age = micros.astype(float) / 1e6  # a missing time is NaN: stale, as nothing says it is fresh
    n = served.num_rows
    stale = int(np.sum(np.isnan(age) | (age > limit)))
    note = f"{stale} of {n} rows served values older than {limit / 86400:g} days"
    return [_share("stale_rate", "served rows", stale, n, "max_stale_rate", cfg, sev, note)]


def _read_served(cfg: dict[str, Any], ctx: Context) -> tuple[Path, pa.Table]:
    """The served log, its times as UTC microseconds."""
    from mlops_gates.data.reader import column_names, read_table

    log = dataset({"path": cfg["served"]}, Path(ctx.policy.path).parent)
    served = read_table(log, column_names(log))
    if TIME not in served.column_names:
        raise GateError(f"the served log has no {TIME} column", where=str(log.path))
    for col in (TIME, SEEN):
        if col in served.column_names:
            try:
                as_time = pc.cast(served[col], pa.timestamp("us", "UTC"))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise GateError(f"{col} is not a time", where=str(log.path)) from None
            served = served.set_column(served.column_names.index(col), col, as_time)
    return log.path, served


def evaluate(spec: GateSpec, ctx: Context) -> GateResult:
    cfg, sev = spec.config, spec.severity
    src = _source(spec, ctx)
    path, served = _read_served(cfg, ctx)
    with tempfile.TemporaryDirectory(prefix="mlops-gates-skew-") as tmp:
        offline, answer = _offline(src, served, Path(tmp))
    known = [f for v in answer["feature_views"] for f in v["features"]]
    features = list(cfg.get("features") or [f for f in known if f in served.column_names])
    missing = [f for f in features if f not in served.column_names or f not in offline.column_names]
    if missing or not features:
        raise GateError(
            f"cannot compare {', '.join(missing) or 'any feature'}: not in both the served log and Feast's features",
            where=str(path),
            hint=f"the log's columns: {', '.join(served.column_names[:30])}",
        )
    n, tol = served.num_rows, float(cfg.get("tolerance", 1e-9))
    tests: list[Check] = []
    for f in features:
        if "max_mismatch_rate" in cfg:
            k = int(_differs(served[f], offline[f], tol).sum())
            note = f"{k} of {n} served values differ from the offline value for the same entity and time"
            tests.append(_share("mismatch_rate", f, k, n, "max_mismatch_rate", cfg, sev, note))
        if "max_psi" in cfg:
            value = np.array([_psi(served[f], offline[f])])
            tests.append(Check("psi", f, value, n, "<=", cfg["max_psi"], sev, exact=True))
    tests += _freshness(served, answer, cfg, sev)
    details = {"served": {"path": str(path), "rows": n}, "features": features}
    return summarise(spec.name, spec.type, judge(tests, ctx.policy), ctx.policy, details)
