"""deepchecks gate: deepchecks' tabular suites and checks, run in their own environment, their conditions
counted like any other check. A check that did not run does not pass (by default it holds)."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mlops_gates import deepchecks_env
from mlops_gates.gates.base import ACTION, Check, Context, GateResult, Status, judge, summarise
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


def evaluate(spec: GateSpec, ctx: Context) -> GateResult:
    cfg = spec.config
    env = Path(cfg["env"]) if cfg.get("env") else deepchecks_env.default_path()
    deepchecks_env.check(env)  # missing or wrong versions: ERROR with what to do
    train = (
        {"reference": ctx.policy.reference, "training": ctx.policy.training}[cfg.get("train", "reference")]
        if cfg.get("suite") != "data_integrity" and (cfg.get("suite") or cfg.get("train"))
        else None
    )
    if cfg.get("suite") == "train_test_validation" and train is None:
        raise ValueError(f"the train_test_validation suite needs data.{cfg.get('train', 'reference')}")
    out_dir = ctx.out_dir or Path(tempfile.mkdtemp(prefix="mlops-gates-dc-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    html = out_dir / f"deepchecks-{re.sub(r'[^A-Za-z0-9_.-]+', '-', spec.name).strip('-')}.html"
    columns = _columns(spec, ctx)
    with tempfile.TemporaryDirectory(prefix="mlops-gates-dc-") as tmp_:
        tmp = Path(tmp_)
        job = {
            "suite": cfg.get("suite"),
            "checks": cfg.get("checks", []),
            "exclude": cfg.get("exclude", []),
            "label": ctx.policy.columns.label,
            "cat_features": cfg.get("cat_features"),
            "columns": columns,
            "test": str(_parquet(ctx.policy.eval_data, columns, tmp, "test")),
            "train": str(_parquet(train, columns, tmp, "train")) if train else None,
            "html": str(html),
            "out": str(tmp / "out.json"),
        }
        (tmp / "job.json").write_text(json.dumps(job))
        runner = Path(__file__).resolve().parents[1] / "deepchecks_runner.py"
        try:
            proc = subprocess.run(
                [str(deepchecks_env.python(env)), str(runner), str(tmp / "job.json")],
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise ValueError(f"deepchecks ran for more than {TIMEOUT} s") from None
        result: dict[str, Any] = (
            json.loads((tmp / "out.json").read_text()) if (tmp / "out.json").is_file() else {}
        )
    if proc.returncode != 0 or "error" in result:
        why = result.get("error") or (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        return GateResult(
            spec.name,
            spec.type,
            Status.ERROR,
            f"deepchecks failed: {why}",
            details={"traceback": result.get("traceback")},
        )
    not_run = ACTION[cfg.get("not_run", "hold")]
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
    if not checks:
        return GateResult(
            spec.name,
            spec.type,
            Status.ERROR,
            "deepchecks produced no condition to judge: add conditions to the checks",
        )
    details = {"html": str(html), "environment": str(env), "checks": [i["header"] for i in result["results"]]}
    return summarise(spec.name, spec.type, judge(checks, ctx.policy), ctx.policy, details)
