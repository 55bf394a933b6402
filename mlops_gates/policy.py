"""gates.yml -> schema validation (every problem, with its line) -> frozen, typed policy."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from mlops_gates import metrics as M
from mlops_gates.errors import GateError, PolicyError
from mlops_gates.models.base import ModelSpec
from mlops_gates.signing.verify import Signer

MAX_POLICY_BYTES = 1 << 20
Problem = tuple[str, str, "str | None"]


# ---------------------------------------------------------------- typed policy
@dataclass(frozen=True)
class Dataset:
    path: Path
    format: str


@dataclass(frozen=True)
class ModelColumns:
    prediction: str | None
    score: tuple[str, ...]  # empty: no scores; one column (binary) or one per class (multiclass)


@dataclass(frozen=True)
class Columns:
    label: str
    candidate: ModelColumns | None  # None until the candidate model has predicted (models.candidate)
    baseline: ModelColumns | None
    sensitive: tuple[str, ...]
    slices: tuple[str, ...]
    weight: str | None
    features: tuple[str, ...] | None


@dataclass(frozen=True)
class Settings:
    confidence: float = 0.95
    replicates: int = 2000
    seed: int = 0
    decision_mode: str = "interval"
    correction: str = "none"
    score_bins: int = 200
    threshold: float = 0.5
    min_group_size: int = 30
    min_group_positives: int = 5
    strata: tuple[str, ...] = ()  # columns the sample was drawn stratified by: the bootstrap resamples within


@dataclass(frozen=True)
class OnOutcome:
    error: str = "reject"
    inconclusive: str = "hold"
    missing_baseline: str = "hold"
    insufficient_group: str = "hold"
    missing_group: str = "hold"


@dataclass(frozen=True)
class Threshold:
    metric: str
    op: str
    value: float
    severity: str


@dataclass(frozen=True)
class Margin:
    metric: str
    kind: str  # "absolute" or "relative"
    value: float
    severity: str


@dataclass(frozen=True)
class GateSpec:
    type: str
    name: str
    severity: str
    config: dict[str, Any] = field(hash=False, compare=False)
    thresholds: tuple[Threshold, ...] = ()
    margins: tuple[Margin, ...] = ()


@dataclass(frozen=True)
class Environment:
    """One step of promotion: who may move a model into it, and whose signatures it trusts."""

    name: str
    signers: tuple[Signer, ...]
    approvers: tuple[str, ...] | None = None  # None: anyone who can run the promotion
    distinct_from_author: bool = False
    min_time_in_previous: float = 0.0  # seconds
    canary: tuple[int, ...] = ()


@dataclass(frozen=True)
class Promotion:
    environments: tuple[Environment, ...]
    registry: str | None = None
    max_decision_age: float = 30 * 86400.0  # seconds
    ledger: Path | None = None  # where the audit log lives (default: in the registry folder)
    watch: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)  # rollback triggers

    def env(self, name: str) -> tuple[int, Environment]:
        for i, e in enumerate(self.environments):
            if e.name == name:
                return i, e
        names = ", ".join(e.name for e in self.environments)
        raise GateError(f"no environment named {name!r}", hint=f"the policy's environments are: {names}")


@dataclass(frozen=True)
class Policy:
    path: Path
    digest: str
    task: str
    positive_label: Any
    classes: tuple[Any, ...]
    eval_data: Dataset
    reference: Dataset | None
    training: Dataset | None
    columns: Columns
    settings: Settings
    on: OnOutcome
    gates: tuple[GateSpec, ...]
    models: dict[str, ModelSpec] = field(default_factory=dict, hash=False, compare=False)
    promotion: Promotion | None = None


# ---------------------------------------------------------------- YAML with line numbers
class _NoAliasLoader(yaml.SafeLoader):
    """Refuses aliases, so a hostile file cannot expand without limit (billion laughs)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.MarkedYAMLError(
                problem="anchors and aliases (*name) are not allowed in a policy; write the values out",
                problem_mark=event.start_mark,
            )
        return super().compose_node(parent, index)


# YAML 1.2 booleans: only true/false. YAML 1.1 would read the key `on:` (and yes/no/off) as a boolean.
_NoAliasLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_NoAliasLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


MAX_DEPTH = 32  # a policy is a few levels deep; deeper nesting is refused, never recursed into


def _to_python(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    path: str,
    lines: dict[str, int],
    problems: list[Problem],
    depth: int = 0,
) -> Any:
    line = node.start_mark.line + 1
    lines[path] = line
    if depth > MAX_DEPTH:
        problems.append((f"line {line}: {path}", f"nested more than {MAX_DEPTH} levels deep", None))
        return None
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            kline = key_node.start_mark.line + 1
            key = loader.construct_object(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                problems.append((f"line {kline}: {path or '(top level)'}", "a key must be plain text", None))
                continue
            child = f"{path}.{key}" if path else key
            if key in out:
                problems.append((f"line {kline}: {child}", "key appears twice", "keep one of them"))
            out[key] = _to_python(loader, value_node, child, lines, problems, depth + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _to_python(loader, n, f"{path}[{i}]", lines, problems, depth + 1)
            for i, n in enumerate(node.value)
        ]
    value = loader.construct_object(node)
    if isinstance(value, float) and not math.isfinite(value):
        problems.append((f"line {line}: {path}", f"{value} is not a finite number", "write a finite number"))
    return value


def read_yaml(path: Path) -> tuple[Any, dict[str, int], bytes]:
    """Parse a policy file; returns the data, a map from dotted path to line, and the raw bytes."""
    file = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PolicyError(
            [("file", "not found", "pass --policy PATH to an existing gates.yml")], file=file
        ) from None
    except OSError as exc:
        raise PolicyError([("file", f"cannot be read: {exc.strerror}", None)], file=file) from None
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError(
            [("file", f"is {len(raw)} bytes; a policy may be at most {MAX_POLICY_BYTES}", None)], file=file
        )
    if not raw.strip():
        raise PolicyError([("file", "is empty", "start from examples/adult/gates.yml")], file=file)
    loader = _NoAliasLoader(raw.decode("utf-8", errors="replace"))
    try:
        node = loader.get_single_node()
        problems: list[Problem] = []
        lines: dict[str, int] = {}
        data = _to_python(loader, node, "", lines, problems) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "file"
        raise PolicyError(
            [(where, f"YAML syntax: {exc.problem or exc.context}", "fix the YAML at that place")], file=file
        ) from None
    except yaml.YAMLError as exc:
        raise PolicyError([("file", f"YAML syntax: {exc}", None)], file=file) from None
    except RecursionError:
        raise PolicyError(
            [("file", f"nested more than {MAX_DEPTH} levels deep", "a policy is a few levels deep")],
            file=file,
        ) from None
    finally:
        loader.dispose()
    if problems:
        raise PolicyError(problems, file=file)
    return data, lines, raw


# ---------------------------------------------------------------- validation
@cache
def schema_file(name: str) -> dict[str, Any]:
    """One of the package's JSON Schemas (schemas/ at the repository root)."""
    return json.loads(resources.files("mlops_gates").joinpath(f"schemas/{name}").read_text())


def schema() -> dict[str, Any]:
    return schema_file("policy.v1.schema.json")


def _where(path: list[Any], lines: dict[str, int]) -> str:
    dotted = ""
    for p in path:
        dotted = f"{dotted}[{p}]" if isinstance(p, int) else (f"{dotted}.{p}" if dotted else str(p))
    probe = dotted
    while probe and probe not in lines:
        probe = probe.rsplit(".", 1)[0] if "." in probe else probe.rsplit("[", 1)[0] if "[" in probe else ""
    line = lines.get(probe or "", 1)
    return f"line {line}: {dotted or '(top level)'}"


def _schema_problems(data: Any, lines: dict[str, int]) -> list[Problem]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    problems: list[Problem] = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        if err.validator in ("if", "allOf") and err.context:
            continue  # reported through its sub-errors
        hint = None
        msg = err.message
        if err.validator == "additionalProperties":
            allowed = sorted((err.schema.get("properties") or {}).keys())
            extra = [k for k in err.instance if k not in allowed] if isinstance(err.instance, dict) else []
            for key in extra:
                s = M.suggest(str(key), allowed)
                problems.append(
                    (
                        _where([*err.absolute_path, key], lines),
                        f"unknown key '{key}'",
                        f"did you mean '{s}'?" if s else f"allowed keys: {', '.join(allowed)}",
                    )
                )
            continue
        if err.validator == "enum":
            choices = [str(x) for x in err.validator_value]
            s = (
                str(err.instance)[::-1]
                if str(err.instance)[::-1] in choices
                else M.suggest(str(err.instance), choices)
            )
            hint = f"did you mean '{s}'?" if s else f"use one of: {', '.join(map(str, err.validator_value))}"
        elif err.validator == "required":
            hint = "add it"
        elif err.validator == "type":
            hint = f"write a {err.validator_value}"
        elif err.validator == "oneOf" and "signers" in err.absolute_path:
            msg = "a signer is either a key or an identity with its issuer"
            hint = "write {key: release.pub} or {identity: URI, issuer: URL} (or identity_regexp)"
        elif err.validator == "pattern" and err.validator_value == DURATION:
            hint = "write a duration: 90s, 30m, 12h or 7d"
        problems.append((_where(list(err.absolute_path), lines), msg, hint))
    return problems


def _semantic_problems(data: dict[str, Any], lines: dict[str, int]) -> list[Problem]:
    """What a schema cannot say: metric names per task, columns a gate refers to."""
    problems: list[Problem] = []
    task = data["task"]
    cols = data["columns"]
    sensitive = cols.get("sensitive", [])
    models = data.get("models", {})
    has_baseline = "baseline" in cols or "baseline" in models
    for side in ("candidate", "baseline"):
        if side in cols and side in models:
            problems.append(
                (
                    _where(["models", side], lines),
                    f"the {side} is given twice: as columns and as a model",
                    f"keep either columns.{side} or models.{side}",
                )
            )
    if "candidate" not in cols and "candidate" not in models:
        problems.append(
            (
                _where(["columns"], lines),
                "no candidate: give its prediction columns or its model",
                "add columns.candidate: {score: COLUMN} or models.candidate: {path: MODEL}",
            )
        )
    for side in ("candidate", "baseline"):
        mc = cols.get(side)
        if not mc:
            continue
        score = mc.get("score")
        if task == "multiclass" and isinstance(score, str):
            problems.append(
                (
                    _where(["columns", side, "score"], lines),
                    "a multiclass score needs one column per class",
                    "list the columns in the order of 'classes'",
                )
            )
        if task == "multiclass" and isinstance(score, list) and len(score) != len(data.get("classes", [])):
            problems.append(
                (
                    _where(["columns", side, "score"], lines),
                    f"{len(score)} score columns for {len(data.get('classes', []))} classes",
                    "give one per class",
                )
            )
        if task != "multiclass" and isinstance(score, list):
            problems.append(
                (_where(["columns", side, "score"], lines), f"a {task} task takes one score column", None)
            )
        if task == "regression" and "prediction" not in mc:
            problems.append(
                (
                    _where(["columns", side], lines),
                    "a regression task needs a 'prediction' column",
                    "add prediction: COLUMN",
                )
            )
    watch = data.get("promotion", {}).get("watch", {})
    checked: list[tuple[list[Any], dict[str, Any]]] = [
        (["gates", gi], g) for gi, g in enumerate(data["gates"])
    ]
    if "metrics" in watch:  # watch's metrics are judged as an accuracy gate on production data
        checked.append((["promotion", "watch"], {"type": "accuracy", "metrics": watch["metrics"]}))
    for at, gate in checked:
        gtype = gate["type"]
        for mi, m in enumerate(gate.get("metrics", [])):
            name = m["metric"]
            info = M.ALL.get(name)
            where = _where([*at, "metrics", mi, "metric"], lines)
            if info is None and name in M.GROUP_RATES:
                problems.append(
                    (
                        where,
                        f"'{name}' is a per-group rate, not a gate metric",
                        f"gate on its spread: {name}_difference, {name}_ratio or {name}_overall_difference",
                    )
                )
                continue
            if info is None:
                s = M.suggest(name, list(M.ALL))
                problems.append(
                    (
                        where,
                        f"unknown metric '{name}'",
                        f"did you mean '{s}'?" if s else "see the policy reference in the README",
                    )
                )
                continue
            side_cols = [cols.get("candidate") or {"score": "model"}] + (
                [cols["baseline"]] if gtype == "regression" and "baseline" in cols else []
            )
            if name in ("roc_auc", "log_loss", "brier", "ece") and any("score" not in mc for mc in side_cols):
                problems.append(
                    (
                        where,
                        f"'{name}' needs a score column for {'each model' if len(side_cols) > 1 else 'the candidate'}",
                        "add score: COLUMN under columns.candidate (and columns.baseline)",
                    )
                )
            if task not in info.tasks:
                problems.append((where, f"metric '{name}' does not apply to a {task} task", None))
            if gtype == "accuracy" and info.kind != "overall":
                problems.append((where, f"'{name}' is a fairness metric", "put it in a fairness gate"))
            if gtype == "fairness" and info.kind != "fairness":
                s = M.suggest(name + "_difference", list(M.FAIRNESS))
                problems.append(
                    (where, f"'{name}' is not a fairness metric", f"did you mean '{s}'?" if s else None)
                )
        if gtype in ("fairness", "regression"):
            feats = gate.get("features", sensitive)
            needs_groups = gtype == "fairness" or any(
                M.ALL.get(m["metric"], M.OVERALL["accuracy"]).kind == "fairness"
                for m in gate.get("metrics", [])
            )
            if needs_groups and not feats:
                problems.append(
                    (
                        _where(at, lines),
                        "needs sensitive features",
                        "list them under columns.sensitive",
                    )
                )
            for fi, f in enumerate(gate.get("features", [])):
                if f not in sensitive:
                    problems.append(
                        (
                            _where([*at, "features", fi], lines),
                            f"'{f}' is not in columns.sensitive",
                            f"add '{f}' to columns.sensitive",
                        )
                    )
            for f in gate.get("expected_groups", {}):
                if f not in sensitive:
                    problems.append(
                        (
                            _where([*at, "expected_groups", f], lines),
                            f"'{f}' is not in columns.sensitive",
                            None,
                        )
                    )
        if gtype == "regression":
            if not gate.get("metrics") and "negative_flips" not in gate:
                problems.append(
                    (
                        _where(at, lines),
                        "a regression gate checks nothing",
                        "add metrics or negative_flips",
                    )
                )
            if not has_baseline:
                problems.append(
                    (
                        _where(at, lines),
                        "a regression gate needs baseline columns",
                        "add columns.baseline",
                    )
                )
            if "negative_flips" in gate and task == "regression":
                problems.append(
                    (
                        _where([*at, "negative_flips"], lines),
                        "negative flips need a classification task",
                        None,
                    )
                )
        if gtype == "budgets":
            if not models:
                problems.append(
                    (
                        _where(at, lines),
                        "budgets are measured while a model predicts",
                        "add models.candidate",
                    )
                )
            if any("margin" in m for m in gate["metrics"]) and "baseline" not in models:
                problems.append(
                    (
                        _where([*at, "metrics"], lines),
                        "a margin compares with the baseline model",
                        "add models.baseline",
                    )
                )
        if gtype == "safety" and not gate.get("paths") and not models:
            problems.append(
                (
                    _where(at, lines),
                    "a safety gate needs something to scan",
                    "add paths: [MODEL] or a models section",
                )
            )
        if gtype == "integrity" and len(gate) == 1 + ("name" in gate) + ("severity" in gate):
            problems.append(
                (
                    _where(at, lines),
                    "an integrity gate checks nothing",
                    "add contract, max_missing_rate, drift, ...",
                )
            )
        pd = gate.get("prediction_drift")
        if pd and not has_baseline:
            problems.append(
                (
                    _where([*at, "prediction_drift"], lines),
                    "prediction drift compares candidate with baseline",
                    "add columns.baseline",
                )
            )
        if gate.get("drift") and "reference" not in data["data"]:
            problems.append(
                (
                    _where([*at, "drift"], lines),
                    "drift needs reference data",
                    "add data.reference.path",
                )
            )
        if "max_leakage_rate" in gate and "training" not in data["data"]:
            problems.append(
                (
                    _where([*at, "max_leakage_rate"], lines),
                    "leakage needs training data",
                    "add data.training.path",
                )
            )
    envs = data.get("promotion", {}).get("environments", [])
    env_names = [e["name"] for e in envs]
    for i, e in enumerate(envs):
        if env_names.count(e["name"]) > 1 and env_names.index(e["name"]) < i:
            problems.append(
                (_where(["promotion", "environments", i, "name"], lines), f"'{e['name']}' twice", None)
            )
        steps = e.get("canary", [])
        if steps != sorted(set(steps)):
            problems.append(
                (
                    _where(["promotion", "environments", i, "canary"], lines),
                    "canary steps must increase",
                    "list the traffic percentages in the order they are reached, e.g. [10, 50]",
                )
            )
    names = [g.get("name", g["type"]) for g in data["gates"]]
    for n in {n for n in names if names.count(n) > 1}:
        problems.append(("gates", f"two gates are named '{n}'", "give each a distinct name"))
    for side in ("candidate", "baseline"):
        mc = cols.get(side) or {}
        if task != "regression" and side in cols and "prediction" not in mc and "score" not in mc:
            problems.append((_where(["columns", side], lines), "needs a prediction or a score column", None))
    problems += _role_problems(cols, lines)
    groups = set(cols.get("sensitive") or []) | set(cols.get("slices") or [])
    strata = ((data.get("settings") or {}).get("bootstrap") or {}).get("strata") or []
    for i, c in enumerate(strata):
        if c not in groups:
            problems.append(
                (
                    _where(["settings", "bootstrap", "strata", i], lines),
                    f"'{c}' is neither a sensitive column nor a slice",
                    "list the columns the sample was stratified by under columns.sensitive or columns.slices",
                )
            )
    return problems


def _role_problems(cols: dict[str, Any], lines: dict[str, int]) -> list[Problem]:
    """One column, one role: a model scored by the label itself, a candidate compared with its own columns, or
    a group that is the label would each make a gate pass on nothing."""
    roles: dict[str, str] = {}
    problems: list[Problem] = []

    def claim(column: Any, role: str, path: list[Any]) -> None:
        if not isinstance(column, str):
            return
        if column in roles and roles[column] != role:
            problems.append(
                (
                    _where(path, lines),
                    f"column '{column}' is already the {roles[column]}",
                    "give each role its own column; a model judged on the label, or against itself, proves nothing",
                )
            )
        roles.setdefault(column, role)

    claim(cols.get("label"), "label", ["columns", "label"])
    for side in ("candidate", "baseline"):
        mc = cols.get(side) or {}
        claim(mc.get("prediction"), f"{side}'s output", ["columns", side, "prediction"])
        score = mc.get("score")
        for i, sc in enumerate([score] if isinstance(score, str) else score or []):
            claim(sc, f"{side}'s output", ["columns", side, "score", i])
    claim(cols.get("weight"), "weight", ["columns", "weight"])
    for key in ("sensitive", "slices"):
        for i, g in enumerate(cols.get(key) or []):
            if roles.get(g) not in (None, "group"):
                claim(g, "group", ["columns", key, i])
            roles.setdefault(g, "group")
    return problems


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


DURATION = "^[0-9]+(s|m|h|d)$"


def seconds(duration: str) -> float:
    """'90s', '30m', '12h', '7d' (the schema has checked the form)."""
    return float(duration[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[duration[-1]]


def _promotion(d: dict[str, Any], base: Path) -> Promotion:
    def path(v: str | None) -> Path | None:
        return None if v is None else (Path(v) if Path(v).is_absolute() else base / v)

    envs = tuple(
        Environment(
            name=e["name"],
            signers=tuple(
                Signer(
                    key=path(s.get("key")),
                    identity=s.get("identity"),
                    identity_regexp=s.get("identity_regexp"),
                    issuer=s.get("issuer"),
                    trust_root=path(s.get("trust_root")),
                    repository=s.get("repository"),
                    ref=s.get("ref"),
                )
                for s in e["signers"]
            ),
            approvers=tuple(e["approvers"]) if "approvers" in e else None,
            distinct_from_author=bool(e.get("distinct_from_author", False)),
            min_time_in_previous=seconds(e.get("min_time_in_previous", "0s")),
            canary=tuple(e.get("canary", [])),
        )
        for e in d["environments"]
    )
    reg = d.get("registry")
    if reg is not None and "://" not in reg:
        reg = str(path(reg))
    return Promotion(
        envs, reg, seconds(d.get("max_decision_age", "30d")), path(d.get("ledger")), dict(d.get("watch", {}))
    )


def _dataset(d: dict[str, Any], base: Path) -> Dataset:
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
            [("line 1", "a policy is a mapping of keys to values", "start from examples/adult/gates.yml")],
            file=str(path),
        )
    problems = _schema_problems(data, lines)
    if not problems:
        problems = _semantic_problems(data, lines)
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
        eval_data=_dataset(data["data"]["eval"], base),
        reference=_dataset(data["data"]["reference"], base) if "reference" in data["data"] else None,
        training=_dataset(data["data"]["training"], base) if "training" in data["data"] else None,
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
        promotion=_promotion(data["promotion"], base) if "promotion" in data else None,
    )
