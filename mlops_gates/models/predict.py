"""The predict step: a pinned model + evaluation features -> a Parquet file of scores, with timings.

`evaluate` runs it in a child process per model, so a model's peak memory is measured alone and a model
that misbehaves while loading takes down only that process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlops_gates.data.reader import column_names, iter_batches, require_columns
from mlops_gates.digest import hash_tree
from mlops_gates.errors import GateError
from mlops_gates.models.adapters import load
from mlops_gates.models.base import Adapter, Task, model_file
from mlops_gates.policy import Dataset, ModelSpec


def output_columns(task: Task) -> list[str]:
    if task.kind == "binary":
        return ["score"]
    if task.kind == "multiclass":
        return [f"score:{c}" for c in task.classes]
    return ["prediction"]


def predict(
    spec: ModelSpec,
    task: Task,
    data: Dataset,
    out: Path,
    *,
    exclude: tuple[str, ...] = (),
    expected: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Score every row of `data` with the model; write the scores to `out`; return timings."""
    # the parent pinned this copy: check it once more, right before loading
    if expected is not None and hash_tree(spec.path) != expected:
        raise GateError(
            "model file changed after it was pinned",
            where=str(spec.path),
            hint="run again; keep the temp folder private",
        )
    path = model_file(spec.path)
    t0 = time.perf_counter()
    adapter = load(spec, path, task)
    load_s = time.perf_counter() - t0
    names = column_names(data)
    features = features_of(spec, adapter.features, names, exclude)
    require_columns(data, features, names)
    cols = output_columns(task)
    latencies: list[float] = []
    parts: list[np.ndarray] = []
    rows = 0
    total = pq.ParquetFile(data.path).metadata.num_rows if data.format == "parquet" else None
    show = sys.stderr.isatty() and (total is None or total > 20 * spec.batch_size)
    for batch in iter_batches(data, features):  # streamed: only the scores stay in memory
        if not batch.num_rows:
            continue
        parts.append(score(adapter, batch, features, spec, latencies))
        rows += batch.num_rows
        if show:
            print(
                f"\rpredicting {rows:,}" + (f"/{total:,}" if total else "") + " rows", end="", file=sys.stderr
            )
    if show:
        print(file=sys.stderr)
    if not rows:
        raise GateError(
            "has no rows to predict", where=str(data.path), hint="write the evaluation rows to it"
        )
    y = np.concatenate(parts)
    pq.write_table(pa.table({c: pa.array(y[:, i]) for i, c in enumerate(cols)}), out)
    found = measures(spec, features, rows, load_s, latencies)
    if getattr(adapter, "rows", 0):  # a GPU's own batch size, chosen from its free memory
        found["device_batch_rows"] = adapter.rows  # type: ignore[attr-defined]
    return found


def features_of(
    spec: ModelSpec, adapter_features: list[str] | None, names: list[str], exclude: tuple[str, ...]
) -> list[str]:
    """The columns a model reads: the policy's list, else the model's own, else every column but the label's."""
    if spec.features:
        return list(spec.features)
    if adapter_features:
        return adapter_features
    return [n for n in names if n not in exclude]


def score(
    adapter: Adapter, batch: pa.RecordBatch, features: list[str], spec: ModelSpec, latencies: list[float]
) -> np.ndarray:
    """One record batch's predictions (rows x outputs), in slices of the model's batch size, each timed."""
    parts = []
    own = getattr(adapter, "own_batches", False)  # a GPU adapter sizes its batches from its free memory
    step = batch.num_rows if own else spec.batch_size
    for start in range(0, batch.num_rows, step):
        chunk = batch.slice(start, step)
        t = time.perf_counter()
        y = adapter.predict(chunk, features)
        latencies.append((time.perf_counter() - t) * 1000)
        if len(y) != chunk.num_rows:
            raise GateError(
                f"the model returned {len(y)} rows for {chunk.num_rows}",
                where=str(spec.path),
                hint="check the model's output",
            )
        parts.append(y.reshape(len(y), -1))
    return np.concatenate(parts) if parts else np.empty((0, 1))


def measures(
    spec: ModelSpec, features: list[str], rows: int, load_s: float, latencies: list[float]
) -> dict[str, Any]:
    """What a predict step reports, and the budgets gate judges."""
    lat = np.asarray(latencies) if latencies else np.zeros(1)
    size = sum(
        p.stat().st_size
        for p in ([spec.path] if spec.path.is_file() else spec.path.rglob("*"))
        if p.is_file()
    )
    return {
        "rows": rows,
        "batches": len(latencies),
        "batch_size": spec.batch_size,
        "load_seconds": load_s,
        "size_bytes": size,
        "latency_p50_ms": float(np.percentile(lat, 50)),
        "latency_p95_ms": float(np.percentile(lat, 95)),
        "features": features,
        "device": spec.device,
    }


@dataclass(frozen=True)
class Run:
    """What one model's predict step produced and cost."""

    predictions: Path | None  # None: the predictions stayed where the data lives
    metrics: dict[str, Any]


def run_child(
    role: str,
    spec: ModelSpec,
    task: Task,
    data: Dataset,
    workdir: Path,
    exclude: tuple[str, ...],
    expected: dict[str, str],
) -> Run:
    """Run `predict` in a child process; its peak memory comes from wait4, for that process alone."""
    job = workdir / f"{role}.job.json"
    out = workdir / f"{role}.predictions.parquet"
    metrics = workdir / f"{role}.metrics.json"
    job.write_text(
        json.dumps(
            {
                "spec": {**asdict(spec), "path": str(spec.path)},
                "task": asdict(task),
                "data": {"path": str(data.path), "format": data.format},
                "out": str(out),
                "metrics": str(metrics),
                "exclude": exclude,
                "expected": expected,
            }
        )
    )
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlops_gates", "predict", "--job", str(job)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=_child_env(),
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        message = err.read().decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        text = message.removeprefix("error: ")
        raise GateError(
            f"the {role} model could not predict: {text}"
            if text
            else f"the {role} model's predict step died (exit {proc.returncode})",
            hint="killed by a signal is most often running out of memory: lower batch_size, or use a larger runner"
            if proc.returncode < 0
            else None,
        )
    m = json.loads(metrics.read_text())
    m["peak_memory_bytes"] = usage.ru_maxrss * 1024  # Linux reports kilobytes
    return Run(out, m)


def _child_env() -> dict[str, str]:
    """The child imports this very copy of mlops_gates, installed or not."""
    here = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_job(job_path: Path) -> None:
    """The child's side of run_child."""
    job = json.loads(job_path.read_text())
    s = job["spec"]
    spec = ModelSpec(
        **{**s, "path": Path(s["path"]), "features": tuple(s["features"]) if s["features"] else None}
    )
    t = job["task"]
    task = Task(t["kind"], t["positive_label"], tuple(t["classes"]))
    metrics = predict(
        spec,
        task,
        Dataset(Path(job["data"]["path"]), job["data"]["format"]),
        Path(job["out"]),
        exclude=job["exclude"],
        expected=job["expected"],
    )
    Path(job["metrics"]).write_text(json.dumps(metrics))
