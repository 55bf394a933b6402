"""deepchecks gate: deepchecks' tabular suites and checks, run in their own environment, their conditions
counted like any other check. A check that did not run does not pass (by default it holds)."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mlops_gates.gates.base import ACTION, Context, GateResult, Status
from mlops_gates.gates.deepchecks import env as deepchecks_env
from mlops_gates.gates.judge import Check, judge, summarise
from mlops_gates.policy import Dataset, GateSpec

CATEGORY = {"PASS": Status.PASS, "WARN": Status.WARN, "FAIL": Status.FAIL, "ERROR": Status.ERROR}
TIMEOUT = 3600


def _parquet(ds: Dataset, columns: list[str], tmp: Path, name: str) -> Path:
    """deepchecks reads Parquet; a CSV or JSONL file is converted once, columns as the gate reads them."""
    if ds.format == "parquet":
        return ds.path
    import pyarrow.parquet as pq

    from mlops_gates.data.reader import read_table

    out = tmp / f"{name}.parquet"
    pq.write_table(read_table(ds, columns), out)
    return out


def _columns(spec: GateSpec, ctx: Context) -> list[str]:
    from mlops_gates.data.reader import column_names
    from mlops_gates.stats.collect import metric_columns

    cfg, cols = spec.config, ctx.policy.columns
    if cfg.get("features"):
        features = list(cfg["features"])
    elif cols.features is not None:
        features = list(cols.features)
    else:
        mapped = set(metric_columns(ctx.policy)) - set(cols.sensitive) - set(cols.slices)
        features = [
            c for c in column_names(ctx.policy.eval_data) if c not in mapped and not c.startswith("__")
        ]
    return [*features, cols.label]


def _model_side(
    role: str, ctx: Context, train: Dataset | None, columns: list[str], tmp: Path
) -> tuple[dict[str, Any], Dataset | None]:
    """The model's predictions for deepchecks' model checks, made here: the model never loads in deepchecks'
    environment. A model file predicts on the train side too; prediction columns must exist there."""
    from mlops_gates.data.reader import column_names, read_table

    pol = ctx.policy
    mc = getattr(pol.columns, role)
    if mc is None:
        raise ValueError(f"model: {role} needs the {role}'s prediction columns or models.{role}")
    job = {
        "kind": pol.task,
        "prediction": mc.prediction,
        "scores": list(mc.score),
        "positive": pol.positive_label,
        "classes": list(pol.classes),
        "threshold": pol.settings.threshold,
    }
    if train is None:
        return job, None
    wanted = [c for c in (mc.prediction, *mc.score) if c]
    if role in ctx.pinned:
        import pyarrow.parquet as pq

        from mlops_gates.models.predict import output_columns, run_child
        from mlops_gates.models.stage import task_of

        model = dataclasses.replace(pol.models[role], path=ctx.pinned[role].path)
        exclude = (pol.columns.label, *([pol.columns.weight] if pol.columns.weight else []))
        run = run_child(f"{role}-train", model, task_of(pol), train, tmp, exclude, ctx.pinned[role].files)
        preds = pq.read_table(run.predictions)
        table = read_table(train, columns)
        for name, col in zip(wanted, output_columns(task_of(pol)), strict=True):
            table = table.append_column(name, preds.column(col))
        pq.write_table(table, tmp / "train+predictions.parquet")
        return job, Dataset(tmp / "train+predictions.parquet", "parquet")
    if set(wanted) <= set(column_names(train)):
        return job, train
    return job, None  # no predictions on the train side: the model checks run on the evaluation data alone


def _run(env: Path, tmp: Path) -> tuple[int, str, dict[str, Any]]:
    """Run the job in deepchecks' own environment: (exit code, stderr, the runner's JSON answer)."""
    runner = Path(__file__).resolve().parent / "runner.py"
    try:
        proc = subprocess.run(
            [str(deepchecks_env.python(env)), str(runner), str(tmp / "job.json")],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise ValueError(f"deepchecks ran for more than {TIMEOUT} s") from None
    answer = tmp / "out.json"
    return proc.returncode, proc.stderr, json.loads(answer.read_text()) if answer.is_file() else {}


def _checks(result: dict[str, Any], spec: GateSpec) -> list[Check]:
    """deepchecks' verdicts as checks with forced statuses: a condition's category, or `not_run` for a check
    that could not run."""
    not_run = ACTION[spec.config.get("not_run", "hold")]
    checks: list[Check] = []
    for item in result["results"]:
        if "not_run" in item:
            checks.append(
                Check(
                    "deepchecks",
                    item["header"],
                    np.array([np.nan]),
                    0,
                    None,
                    None,
                    spec.severity,
                    note=f"did not run: {item['not_run']}",
                    forced=not_run,
                )
            )
        for c in item.get("conditions", []):
            checks.append(
                Check(
                    "deepchecks",
                    f"{item['header']}: {c['name']}",
                    np.array([np.nan]),
                    0,
                    None,
                    None,
                    spec.severity,
                    note=c["details"][:500],
                    forced=CATEGORY.get(c["category"], Status.ERROR),
                )
            )
    return checks


def evaluate(spec: GateSpec, ctx: Context) -> GateResult:
    cfg = spec.config
    env = Path(cfg["env"]) if cfg.get("env") else deepchecks_env.default_path()
    deepchecks_env.check(env)  # missing or wrong versions: ERROR with what to do
    train = (
        {"reference": ctx.policy.reference, "training": ctx.policy.training}[cfg.get("train", "reference")]
        if cfg.get("suite") != "data_integrity" and (cfg.get("suite") or cfg.get("train"))
        else None
    )
    role = cfg.get("model", "candidate" if cfg.get("suite") == "model_evaluation" else None)
    if cfg.get("suite") == "train_test_validation" and train is None:
        raise ValueError(f"the train_test_validation suite needs data.{cfg.get('train', 'reference')}")
    out_dir = ctx.out_dir or Path(tempfile.mkdtemp(prefix="mlops-gates-dc-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    html = out_dir / f"deepchecks-{re.sub(r'[^A-Za-z0-9_.-]+', '-', spec.name).strip('-')}.html"
    columns = _columns(spec, ctx)
    with tempfile.TemporaryDirectory(prefix="mlops-gates-dc-") as tmp_:
        tmp = Path(tmp_)
        predictions: dict[str, Any] | None = None
        if role:
            predictions, train = _model_side(role, ctx, train, columns, tmp)
        extra = [c for c in (predictions["prediction"], *predictions["scores"]) if c] if predictions else []
        job = {
            "suite": cfg.get("suite"),
            "checks": cfg.get("checks", []),
            "exclude": cfg.get("exclude", []),
            "label": ctx.policy.columns.label,
            "cat_features": cfg.get("cat_features"),
            "columns": columns,
            "test": str(_parquet(ctx.policy.eval_data, columns + extra, tmp, "test")),
            "train": str(_parquet(train, columns + extra, tmp, "train")) if train else None,
            "predictions": predictions,
            "html": str(html),
            "out": str(tmp / "out.json"),
        }
        (tmp / "job.json").write_text(json.dumps(job))
        returncode, stderr, result = _run(env, tmp)
    if returncode != 0 or "error" in result:
        why = result.get("error") or (stderr.strip().splitlines() or [f"exit {returncode}"])[-1]
        return GateResult(
            spec.name,
            spec.type,
            Status.ERROR,
            f"deepchecks failed: {why}",
            details={"traceback": result.get("traceback")},
        )
    checks = _checks(result, spec)
    if not checks:
        return GateResult(
            spec.name,
            spec.type,
            Status.ERROR,
            "deepchecks produced no condition to judge: add conditions to the checks",
        )
    details: dict[str, Any] = {
        "html": str(html),
        "environment": str(env),
        "checks": [i["header"] for i in result["results"]],
    }
    if role:
        details["model"] = {"role": role, "train_predictions": train is not None}
    return summarise(spec.name, spec.type, judge(checks, ctx.policy), ctx.policy, details)
