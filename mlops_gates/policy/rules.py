"""What a schema cannot say: metric names per task, the columns a gate refers to, one role per column.

Each gate type's rules are one function in GATE_RULES; a new gate adds its function there (and its schema
fragment), nothing else here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlops_gates.policy import governance
from mlops_gates.policy import metrics as M
from mlops_gates.policy.model import LIVE_COLUMNS, Problem
from mlops_gates.policy.schema import where

SCORE_METRICS = ("roc_auc", "log_loss", "brier", "ece")


@dataclass(frozen=True)
class Doc:
    """The schema-valid policy document, with what most rules ask of it."""

    data: dict[str, Any]
    lines: dict[str, int]

    @property
    def task(self) -> str:
        task: str = self.data["task"]
        return task

    @property
    def cols(self) -> dict[str, Any]:
        cols: dict[str, Any] = self.data["columns"]
        return cols

    @property
    def sensitive(self) -> list[str]:
        sensitive: list[str] = self.cols.get("sensitive", [])
        return sensitive

    @property
    def models(self) -> dict[str, Any]:
        models: dict[str, Any] = self.data.get("models", {})
        return models

    @property
    def has_baseline(self) -> bool:
        return "baseline" in self.cols or "baseline" in self.models

    def at(self, path: list[Any]) -> str:
        return where(path, self.lines)


def semantic_problems(data: dict[str, Any], lines: dict[str, int]) -> list[Problem]:
    """Every problem at once, in the order of the file's sections."""
    doc = Doc(data, lines)
    problems = _model_problems(doc)
    watch = data.get("promotion", {}).get("watch", {})
    checked: list[tuple[list[Any], dict[str, Any]]] = [(["gates", i], g) for i, g in enumerate(data["gates"])]
    if "metrics" in watch:  # watch's metrics are judged as an accuracy gate on production data
        checked.append((["promotion", "watch"], {"type": "accuracy", "metrics": watch["metrics"]}))
    for at, gate in checked:
        problems += _metric_problems(doc, at, gate)
        problems += GATE_RULES.get(gate["type"], _none)(doc, at, gate)
        problems += _data_problems(doc, at, gate)
    problems += _environment_problems(doc) + _analysis_problems(doc)
    names = [g.get("name", g["type"]) for g in data["gates"]]
    for n in {n for n in names if names.count(n) > 1}:
        problems.append(("gates", f"two gates are named '{n}'", "give each a distinct name"))
    for side in ("candidate", "baseline"):
        mc = doc.cols.get(side) or {}
        if doc.task != "regression" and side in doc.cols and "prediction" not in mc and "score" not in mc:
            problems.append((doc.at(["columns", side]), "needs a prediction or a score column", None))
    problems += governance.problems(data, lines)
    return problems + role_problems(doc.cols, lines) + _strata_problems(doc)


def _model_problems(doc: Doc) -> list[Problem]:
    """Each model given once, as columns or as a model file, with the columns its task needs."""
    problems: list[Problem] = []
    cols, models = doc.cols, doc.models
    for side in ("candidate", "baseline"):
        if side in cols and side in models:
            problems.append(
                (
                    doc.at(["models", side]),
                    f"the {side} is given twice: as columns and as a model",
                    f"keep either columns.{side} or models.{side}",
                )
            )
    if "candidate" not in cols and "candidate" not in models:
        problems.append(
            (
                doc.at(["columns"]),
                "no candidate: give its prediction columns or its model",
                "add columns.candidate: {score: COLUMN} or models.candidate: {path: MODEL}",
            )
        )
    for side in ("candidate", "baseline"):
        mc = cols.get(side)
        if mc:
            problems += _score_problems(doc, side, mc)
    return problems


def _score_problems(doc: Doc, side: str, mc: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    task, score, at = doc.task, mc.get("score"), doc.at(["columns", side, "score"])
    classes = doc.data.get("classes", [])
    if task == "multiclass" and isinstance(score, str):
        problems.append(
            (
                at,
                "a multiclass score needs one column per class",
                "list the columns in the order of 'classes'",
            )
        )
    if task == "multiclass" and isinstance(score, list) and len(score) != len(classes):
        problems.append((at, f"{len(score)} score columns for {len(classes)} classes", "give one per class"))
    if task != "multiclass" and isinstance(score, list):
        problems.append((at, f"a {task} task takes one score column", None))
    if task == "regression" and "prediction" not in mc:
        problems.append(
            (
                doc.at(["columns", side]),
                "a regression task needs a 'prediction' column",
                "add prediction: COLUMN",
            )
        )
    return problems


def _metric_problems(doc: Doc, at: list[Any], gate: dict[str, Any]) -> list[Problem]:
    """Each metric exists, applies to the task, belongs in this kind of gate and has the columns it reads."""
    problems: list[Problem] = []
    gtype, cols = gate["type"], doc.cols
    for mi, m in enumerate(gate.get("metrics", [])):
        name = m["metric"]
        info = M.ALL.get(name)
        here = doc.at([*at, "metrics", mi, "metric"])
        if info is None and name in M.GROUP_RATES:
            problems.append(
                (
                    here,
                    f"'{name}' is a per-group rate, not a gate metric",
                    f"gate on its spread: {name}_difference, {name}_ratio or {name}_overall_difference",
                )
            )
            continue
        if info is None:
            s = M.suggest(name, list(M.ALL))
            hint = (
                f"did you mean '{s}'?"
                if s
                else "see docs/policy-reference.md, or run `mlops-gates policy reference`"
            )
            problems.append((here, f"unknown metric '{name}'", hint))
            continue
        side_cols = [cols.get("candidate") or {"score": "model"}] + (
            [cols["baseline"]] if gtype == "regression" and "baseline" in cols else []
        )
        if name in SCORE_METRICS and any("score" not in mc for mc in side_cols):
            problems.append(
                (
                    here,
                    f"'{name}' needs a score column for {'each model' if len(side_cols) > 1 else 'the candidate'}",
                    "add score: COLUMN under columns.candidate (and columns.baseline)",
                )
            )
        if doc.task not in info.tasks:
            problems.append((here, f"metric '{name}' does not apply to a {doc.task} task", None))
        if gtype == "accuracy" and info.kind != "overall":
            problems.append((here, f"'{name}' is a fairness metric", "put it in a fairness gate"))
        if gtype == "fairness" and info.kind != "fairness":
            s = M.suggest(name + "_difference", list(M.FAIRNESS))
            problems.append(
                (here, f"'{name}' is not a fairness metric", f"did you mean '{s}'?" if s else None)
            )
    return problems


def _group_problems(doc: Doc, at: list[Any], gate: dict[str, Any]) -> list[Problem]:
    """Fairness, and regression by group: the features named are sensitive columns."""
    problems: list[Problem] = []
    sensitive = doc.sensitive
    needs_groups = gate["type"] == "fairness" or any(
        M.ALL.get(m["metric"], M.OVERALL["accuracy"]).kind == "fairness" for m in gate.get("metrics", [])
    )
    if needs_groups and not gate.get("features", sensitive):
        problems.append((doc.at(at), "needs sensitive features", "list them under columns.sensitive"))
    for fi, f in enumerate(gate.get("features", [])):
        if f not in sensitive:
            problems.append(
                (
                    doc.at([*at, "features", fi]),
                    f"'{f}' is not in columns.sensitive",
                    f"add '{f}' to columns.sensitive",
                )
            )
    for f in gate.get("expected_groups", {}):
        if f not in sensitive:
            problems.append((doc.at([*at, "expected_groups", f]), f"'{f}' is not in columns.sensitive", None))
    return problems


def _regression_problems(doc: Doc, at: list[Any], gate: dict[str, Any]) -> list[Problem]:
    problems = _group_problems(doc, at, gate)
    if not gate.get("metrics") and "negative_flips" not in gate:
        problems.append((doc.at(at), "a regression gate checks nothing", "add metrics or negative_flips"))
    if not doc.has_baseline:
        problems.append((doc.at(at), "a regression gate needs baseline columns", "add columns.baseline"))
    if "negative_flips" in gate and doc.task == "regression":
        problems.append((doc.at([*at, "negative_flips"]), "negative flips need a classification task", None))
    return problems


def _budgets_problems(doc: Doc, at: list[Any], gate: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    if not doc.models:
        problems.append((doc.at(at), "budgets are measured while a model predicts", "add models.candidate"))
    if any("margin" in m for m in gate["metrics"]) and "baseline" not in doc.models:
        problems.append(
            (doc.at([*at, "metrics"]), "a margin compares with the baseline model", "add models.baseline")
        )
    return problems


def _safety_problems(doc: Doc, at: list[Any], gate: dict[str, Any]) -> list[Problem]:
    if not gate.get("paths") and not doc.models:
        return [
            (doc.at(at), "a safety gate needs something to scan", "add paths: [MODEL] or a models section")
        ]
    return []


def _integrity_problems(doc: Doc, at: list[Any], gate: dict[str, Any]) -> list[Problem]:
    if len(gate) == 1 + ("name" in gate) + ("severity" in gate):
        return [
            (doc.at(at), "an integrity gate checks nothing", "add contract, max_missing_rate, drift, ...")
        ]
    return []


def _none(doc: Doc, at: list[Any], gate: dict[str, Any]) -> list[Problem]:
    return []


GATE_RULES: dict[str, Callable[[Doc, list[Any], dict[str, Any]], list[Problem]]] = {
    "fairness": _group_problems,
    "regression": _regression_problems,
    "budgets": _budgets_problems,
    "safety": _safety_problems,
    "integrity": _integrity_problems,
}


def _data_problems(doc: Doc, at: list[Any], gate: dict[str, Any]) -> list[Problem]:
    """The data a check compares with is there: the baseline, a reference set, the training set."""
    problems: list[Problem] = []
    data = doc.data["data"]
    if gate.get("prediction_drift") and not doc.has_baseline:
        problems.append(
            (
                doc.at([*at, "prediction_drift"]),
                "prediction drift compares candidate with baseline",
                "add columns.baseline",
            )
        )
    if gate.get("drift") and "reference" not in data:
        problems.append((doc.at([*at, "drift"]), "drift needs reference data", "add data.reference.path"))
    if "max_leakage_rate" in gate and "training" not in data:
        problems.append(
            (doc.at([*at, "max_leakage_rate"]), "leakage needs training data", "add data.training.path")
        )
    return problems


def _environment_problems(doc: Doc) -> list[Problem]:
    problems: list[Problem] = []
    envs = doc.data.get("promotion", {}).get("environments", [])
    env_names = [e["name"] for e in envs]
    for i, e in enumerate(envs):
        if env_names.count(e["name"]) > 1 and env_names.index(e["name"]) < i:
            problems.append((doc.at(["promotion", "environments", i, "name"]), f"'{e['name']}' twice", None))
        steps = e.get("canary", [])
        if steps and e.get("blue_green"):
            problems.append(
                (
                    doc.at(["promotion", "environments", i, "blue_green"]),
                    "an environment is either blue-green or goes through canary steps",
                    "drop canary or blue_green",
                )
            )
        if steps != sorted(set(steps)):
            problems.append(
                (
                    doc.at(["promotion", "environments", i, "canary"]),
                    "canary steps must increase",
                    "list the traffic percentages in the order they are reached, e.g. [10, 50]",
                )
            )
    return problems


LIVE_METRIC_TASKS = {
    "accuracy": ("binary", "multiclass"),
    "log_loss": ("binary",),
    "brier": ("binary",),
    "mae": ("regression",),
}


def _analysis_problems(doc: Doc) -> list[Problem]:
    """The live analysis' metrics suit the task, and no two of its columns share a name."""
    analysis = doc.data.get("promotion", {}).get("analysis", {})
    problems: list[Problem] = [
        (
            doc.at(["promotion", "analysis", "metrics", i, "metric"]),
            f"{m['metric']} does not apply to a {doc.task} task",
            f"use one of: {', '.join(k for k, tasks in LIVE_METRIC_TASKS.items() if doc.task in tasks)}",
        )
        for i, m in enumerate(analysis.get("metrics", []))
        if doc.task not in LIVE_METRIC_TASKS[m["metric"]]
    ]
    problems += [
        (
            doc.at(["promotion", "analysis", "fairness", i, "rate"]),
            f"{f['rate']} needs a positive class: a binary task",
            "use accuracy for a multiclass task; fairness on a regression is not judged live",
        )
        for i, f in enumerate(analysis.get("fairness", []))
        if doc.task != "binary" and (f["rate"] != "accuracy" or doc.task == "regression")
    ]
    given = analysis.get("columns") or {}
    seen: dict[str, str] = {}
    for key, name in sorted({**LIVE_COLUMNS, **given}.items(), key=lambda kv: kv[0] in given):
        if name in seen:
            problems.append(
                (
                    doc.at(["promotion", "analysis", "columns", key]),
                    f"'{name}' is already the {seen[name]} column",
                    "give each its own column",
                )
            )
        seen.setdefault(name, key)
    return problems


def _strata_problems(doc: Doc) -> list[Problem]:
    groups = set(doc.cols.get("sensitive") or []) | set(doc.cols.get("slices") or [])
    strata = ((doc.data.get("settings") or {}).get("bootstrap") or {}).get("strata") or []
    return [
        (
            doc.at(["settings", "bootstrap", "strata", i]),
            f"'{c}' is neither a sensitive column nor a slice",
            "list the columns the sample was stratified by under columns.sensitive or columns.slices",
        )
        for i, c in enumerate(strata)
        if c not in groups
    ]


def role_problems(cols: dict[str, Any], lines: dict[str, int]) -> list[Problem]:
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
                    where(path, lines),
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
