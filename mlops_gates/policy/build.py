"""Validated YAML -> the typed policy: paths resolved against the policy's folder, defaults filled in."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from mlops_gates.errors import PolicyError
from mlops_gates.policy.governance import DEFAULT_WAIVER_AGE, env_roles, roles_of, signer
from mlops_gates.policy.model import (
    Columns,
    Dataset,
    Environment,
    FeastSource,
    GateSpec,
    Margin,
    ModelColumns,
    ModelSpec,
    OnOutcome,
    Policy,
    Promotion,
    Residency,
    Role,
    Settings,
    Threshold,
    WaiverRule,
    Waivers,
)
from mlops_gates.policy.rules import semantic_problems
from mlops_gates.policy.schema import schema_problems
from mlops_gates.policy.yaml_read import read_yaml


def _margin(m: dict[str, float]) -> tuple[str, float]:
    kind, value = next(iter(m.items()))
    return kind, float(value)


def _model_spec(m: dict[str, Any], base: Path) -> ModelSpec:
    p = Path(m["path"])
    return ModelSpec(
        path=p if p.is_absolute() else base / p,
        format=m.get("format", "auto"),
        trust=m.get("trust"),
        model_class=m.get("class"),
        init=dict(m.get("init", {})),
        features=tuple(m["features"]) if "features" in m else None,
        device=m.get("device", "cpu"),
        batch_size=int(m.get("batch_size", 4096)),
        output=m.get("output", "auto"),
    )


def seconds(duration: str) -> float:
    """'90s', '30m', '12h', '7d' (the schema has checked the form)."""
    return float(duration[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[duration[-1]]


def _relative(base: Path) -> Any:
    """Paths in the policy are relative to its folder."""

    def path(v: str | None) -> Path | None:
        return None if v is None else (Path(v) if Path(v).is_absolute() else base / v)

    return path


def _waivers(data: dict[str, Any], base: Path) -> Waivers | None:
    w = data.get("waivers")
    if w is None:
        return None
    path, roles = _relative(base), roles_of(data)
    return Waivers(
        path(w.get("dir", "waivers")),
        tuple(signer(s, path) for s in w["signers"]),
        tuple(
            WaiverRule(roles[a["role"]], tuple(a["gates"]), seconds(a.get("max_age", DEFAULT_WAIVER_AGE)))
            for a in w["allow"]
        ),
    )


def _promotion(d: dict[str, Any], base: Path, roles: dict[str, Role]) -> Promotion:
    path = _relative(base)
    envs = tuple(
        Environment(
            name=e["name"],
            signers=tuple(signer(s, path) for s in e["signers"]),
            approvers=tuple(e["approvers"]) if "approvers" in e else None,
            distinct_from_author=bool(e.get("distinct_from_author", False)),
            min_time_in_previous=seconds(e.get("min_time_in_previous", "0s")),
            canary=tuple(e.get("canary", [])),
            blue_green=bool(e.get("blue_green", False)),
            roles=env_roles(e, roles),
        )
        for e in d["environments"]
    )
    reg = d.get("registry")
    if reg is not None and "://" not in reg:
        reg = str(path(reg))
    return Promotion(
        envs,
        reg,
        seconds(d.get("max_decision_age", "30d")),
        path(d.get("ledger")),
        dict(d.get("watch", {})),
        dict(d.get("analysis", {})),
        dict(d.get("alerts", {})),
        seconds(d["retention"]["versions"]) if "versions" in d.get("retention", {}) else None,
        bool(d.get("encrypted", False)),
    )


def dataset(d: dict[str, Any], base: Path) -> Dataset:
    if "feast" in d:
        f, path = d["feast"], _relative(base)
        features = f["features"] if isinstance(f["features"], str) else tuple(f["features"])
        src = FeastSource(path(f["repo"]), features, path(f["entities"]), path(f.get("env")))
        return Dataset(src.entities.with_name(src.entities.stem + ".features.parquet"), "feast", src)
    p = Path(d["path"])
    path = p if p.is_absolute() else base / p
    fmt = d.get("format") or {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(
        path.suffix.lower(), "parquet"
    )
    return Dataset(path, fmt)


def _model_columns(d: dict[str, Any] | None) -> ModelColumns | None:
    if d is None:
        return None
    score = d.get("score")
    return ModelColumns(d.get("prediction"), tuple([score] if isinstance(score, str) else score or []))


def load(path: str | Path) -> Policy:
    """Read and validate a policy; raises PolicyError listing every problem at once."""
    path = Path(path)
    data, lines, raw = read_yaml(path)
    if not isinstance(data, dict):
        raise PolicyError(
            [
                (
                    "line 1",
                    "a policy is a mapping of keys to values",
                    "start from the demo's policy: `mlops-gates demo` writes gate-out/gates.yml",
                )
            ],
            file=str(path),
        )
    problems = schema_problems(data, lines)
    if not problems:
        problems = semantic_problems(data, lines)
    if problems:
        raise PolicyError(problems, file=str(path))

    base = path.parent
    c = data["columns"]
    s = data.get("settings", {})
    boot = s.get("bootstrap", {})
    settings = Settings(
        confidence=float(s.get("confidence", 0.95)),
        replicates=int(boot.get("replicates", 2000)),
        seed=int(boot.get("seed", 0)),
        decision_mode=s.get("decision_mode", "interval"),
        correction=s.get("correction", "none"),
        score_bins=int(s.get("score_bins", 200)),
        threshold=float(s.get("threshold", 0.5)),
        min_group_size=int(s.get("min_group_size", 30)),
        min_group_positives=int(s.get("min_group_positives", 5)),
        strata=tuple(boot.get("strata", [])),
    )
    gates = []
    for g in data["gates"]:
        sev = g.get("severity", "fail")
        thresholds = tuple(
            Threshold(m["metric"], m["op"], float(m["value"]), m.get("severity", sev))
            for m in g.get("metrics", [])
            if "op" in m
        )
        margins = tuple(
            Margin(m["metric"], *_margin(m["margin"]), m.get("severity", sev))
            for m in g.get("metrics", [])
            if "margin" in m
        )
        gates.append(GateSpec(g["type"], g.get("name", g["type"]), sev, g, thresholds, margins))
    return Policy(
        path=path,
        digest="sha256:" + hashlib.sha256(raw).hexdigest(),
        task=data["task"],
        positive_label=data.get("positive_label"),
        classes=tuple(data.get("classes", [])),
        eval_data=dataset(data["data"]["eval"], base),
        reference=dataset(data["data"]["reference"], base) if "reference" in data["data"] else None,
        training=dataset(data["data"]["training"], base) if "training" in data["data"] else None,
        columns=Columns(
            label=c["label"],
            candidate=_model_columns(c.get("candidate")),
            baseline=_model_columns(c.get("baseline")),
            sensitive=tuple(c.get("sensitive", [])),
            slices=tuple(c.get("slices", [])),
            weight=c.get("weight"),
            features=tuple(c["features"]) if "features" in c else None,
        ),
        settings=settings,
        on=OnOutcome(**data.get("on", {})),
        gates=tuple(gates),
        models={role: _model_spec(m, base) for role, m in data.get("models", {}).items()},
        promotion=_promotion(data["promotion"], base, roles_of(data)) if "promotion" in data else None,
        waivers=_waivers(data, base),
        residency=Residency(**data["residency"]) if "residency" in data else None,
    )
