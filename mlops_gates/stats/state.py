"""The sufficient statistics as a file: one shard's state, written by `stats compute`, merged by
`evaluate --stats`. Counts and sums add up exactly; what cannot be merged safely is refused."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np

from mlops_gates._version import __version__
from mlops_gates.errors import GateError, read_json
from mlops_gates.policy import Policy
from mlops_gates.stats.collect import EvalStats, canonical_strata
from mlops_gates.stats.integrity import Drift, IntegrityStats
from mlops_gates.stats.row_hashes import RowHashes
from mlops_gates.stats.table import CellTable

FORMAT = "mlops-gates-stats/1"


def _arr(a: np.ndarray) -> dict[str, Any]:
    """Arrays travel as base64 little-endian bytes with their dtype: exact, and compact."""
    a = np.ascontiguousarray(a)
    return {
        "dtype": a.dtype.newbyteorder("<").str,
        "data": base64.b64encode(a.astype(a.dtype.newbyteorder("<")).tobytes()).decode(),
    }


def _unarr(d: dict[str, Any]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(d["data"]), dtype=np.dtype(d["dtype"])).copy()


def to_state(stats: EvalStats, policy: Policy, data_path: Path) -> dict[str, Any]:
    c = stats.cells
    out: dict[str, Any] = {
        "format": FORMAT,
        "tool": {"name": "mlops-gates", "version": __version__},
        "policy_digest": policy.digest,
        "shards": [{"path": str(data_path), "digest": stats.data_digest, "rows": stats.rows}],
        "task": stats.task,
        "classes": stats.classes,
        "group_columns": list(stats.group_columns),
        "strata": [list(s) for s in stats.strata],
        "edges": _arr(stats.edges),
        "has_baseline": stats.has_baseline,
        "has_score": stats.has_score,
        "cells": {
            "keys": {k: _arr(v) for k, v in c.keys.items()},
            "sums": {k: _arr(v) for k, v in c.sums.items()},
            "n": _arr(c.n),
        },
        "integrity": None,
    }
    i = stats.integrity
    if i is not None:
        hashes = i.hashes.arrays()
        out["integrity"] = {
            "rows": i.rows,
            "features": i.features,
            "missing": i.missing,
            "violations": i.violations,
            "leakage": i.leakage,
            "feature_hashes": _arr(hashes[0]),
            "labels": _arr(hashes[1]),
            "drift": {
                name: {
                    "kind": d.kind,
                    "ref": _arr(d.ref),
                    "cur": _arr(d.cur),
                    "ks_ref": _arr(d.ks_ref),
                    "ks_cur": _arr(d.ks_cur),
                    "edges": _arr(d.edges),
                    "ks_edges": _arr(d.ks_edges),
                    "categories": d.categories,
                }
                for name, d in i.drift.items()
            },
        }
    return out


def write(state: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(state) + "\n")


def read(path: Path) -> dict[str, Any]:
    state = read_json(path, "a statistics file", "pass the files `mlops-gates stats compute` wrote")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else None
        raise GateError(
            f"statistics format {found!r}, this version reads {FORMAT!r}",
            where=str(path),
            hint="compute every shard with the same mlops-gates version",
        )
    return state


def _integrity(states: list[dict[str, Any]]) -> IntegrityStats | None:
    parts = [s["integrity"] for s in states]
    if all(p is None for p in parts):
        return None
    if any(p is None for p in parts):
        raise GateError(
            "some shards carry integrity facts and some do not",
            hint="compute every shard with the same policy",
        )
    missing: dict[str, int] = {}
    violations: dict[tuple[str, str], dict[str, Any]] = {}
    for p in parts:
        for k, v in p["missing"].items():
            missing[k] = missing.get(k, 0) + v
        for v in p["violations"]:
            acc = violations.setdefault((v["column"], v["check"]), {**v, "count": 0})
            acc["count"] += v["count"]
    drift: dict[str, Drift] = {}
    for name, d0 in parts[0]["drift"].items():
        cats = list(d0["categories"])
        cur = np.zeros(len(cats))
        for p in parts:
            d = p["drift"][name]
            if d["kind"] == "categorical":  # categories first seen in a shard: align by value
                for cat, k in zip(d["categories"], _unarr(d["cur"]), strict=True):
                    if cat not in cats:
                        cats.append(cat)
                        cur = np.append(cur, 0)
                    cur[cats.index(cat)] += k
            else:
                cur = cur + _unarr(d["cur"]) if len(cur) else _unarr(d["cur"])
        ref = (
            np.concatenate([_unarr(d0["ref"]), np.zeros(len(cats) - len(d0["categories"]))])
            if d0["kind"] == "categorical"
            else _unarr(d0["ref"])
        )
        ks_cur = (
            sum(_unarr(p["drift"][name]["ks_cur"]) for p in parts)
            if d0["kind"] == "numeric"
            else _unarr(d0["ks_cur"])
        )
        drift[name] = Drift(
            d0["kind"],
            ref,
            cur,
            _unarr(d0["ks_ref"]),
            np.asarray(ks_cur),
            _unarr(d0["edges"]),
            _unarr(d0["ks_edges"]),
            cats,
        )
    leak = [p["leakage"] for p in parts]
    return IntegrityStats(
        sum(p["rows"] for p in parts),
        parts[0]["features"],
        missing,
        list(violations.values()),
        None if any(v is None for v in leak) else sum(leak),
        drift,
        RowHashes.of(
            np.concatenate([_unarr(p["feature_hashes"]) for p in parts]),
            np.concatenate([_unarr(p["labels"]) for p in parts]),
        ),
    )


def merge(paths: list[Path], policy: Policy) -> EvalStats:
    """Add shards' statistics up; refuses another policy, another format, a shard given twice."""
    if not paths:
        raise GateError("no statistics files given", hint="pass --stats FILE once per shard")
    states = [read(p) for p in paths]
    seen: dict[str, str] = {}
    for path, s in zip(paths, states, strict=True):
        if s["policy_digest"] != policy.digest:
            raise GateError(
                "computed under another policy",
                where=str(path),
                hint=f"recompute it with this policy ({policy.digest[:19]}…), or evaluate with the policy it was made with",
            )
        for shard in s["shards"]:
            if shard["digest"] in seen:
                raise GateError(
                    f"overlaps {seen[shard['digest']]}: the shard {shard['path']} is counted twice",
                    where=str(path),
                    hint="give each shard once",
                )
            seen[shard["digest"]] = str(path)
        for key in ("task", "classes", "group_columns", "has_baseline"):
            if s[key] != states[0][key]:
                raise GateError(
                    f"its {key} differs from {paths[0]}'s",
                    where=str(path),
                    hint="compute every shard with the same policy",
                )
        if s["edges"] != states[0]["edges"]:
            raise GateError(
                "its score bins differ", where=str(path), hint="compute every shard with the same policy"
            )
    # one stratum numbering for all shards, by value
    index: dict[tuple[Any, ...], int] = {}
    tables = []
    for s in states:
        ids = np.array([index.setdefault(tuple(v), len(index)) for v in s["strata"]], dtype=np.int64)
        keys = {k: _unarr(v) for k, v in s["cells"]["keys"].items()}
        keys["stratum"] = ids[keys["stratum"]] if len(ids) else keys["stratum"]
        tables.append(
            CellTable(keys, {k: _unarr(v) for k, v in s["cells"]["sums"].items()}, _unarr(s["cells"]["n"]))
        )
    table = tables[0]
    for t in tables[1:]:
        table = table.merge(t)
    strata, table = canonical_strata(list(index), table)
    first = states[0]
    return EvalStats(
        task=first["task"],
        classes=first["classes"],
        group_columns=tuple(first["group_columns"]),
        strata=strata,
        cells=table,
        edges=_unarr(first["edges"]),
        rows=sum(sh["rows"] for s in states for sh in s["shards"]),
        has_baseline=first["has_baseline"],
        has_score={k: all(s["has_score"][k] for s in states) for k in ("c", "b")},
        data_digest=first["shards"][0]["digest"] if len(seen) == 1 else "sha256:" + _combined(sorted(seen)),
        integrity=_integrity(states),
    )


def _combined(digests: list[str]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(digests).encode()).hexdigest()
