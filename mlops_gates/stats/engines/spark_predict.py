"""Models predict on Spark's executors, beside the data. Each executor receives the pinned copy through Spark's
file shipping, checks every file against the digests pinned on the runner before loading it with the same
adapters and safety rules as a local run, and appends the scores to its partition's Arrow batches, which then
feed the one GROUP BY. A failure names its partition and fails the job, so no partial result is ever read."""

from __future__ import annotations

import functools
import os
import re
import resource
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.accumulators import AccumulatorParam

from mlops_gates.digest import hash_tree
from mlops_gates.errors import GateError
from mlops_gates.models.adapters import load
from mlops_gates.models.base import Adapter, Task, model_file
from mlops_gates.models.predict import features_of, measures, score
from mlops_gates.models.stage import Elsewhere
from mlops_gates.policy import ModelSpec

MARK = "mlops-gates partition"
_FAILED = re.compile(r"\[" + MARK + r" (\d+)\] ([^\n]*)")
_LOST = re.compile(r"Task (\d+) in stage \S+ failed \d+ times?[^\n]*?: ([^\n]*)")


@dataclass(frozen=True)
class Job:
    """What an executor needs to score one model; plain data, pickled into every task."""

    role: str
    spec: ModelSpec  # path: the pinned copy on the runner (shown in messages)
    files: dict[str, str]  # relative name -> sha256, as pinned
    shipped: str  # the archive Spark ships the pinned folder in (and unpacks under the same name)
    inner: str  # the pinned file within that folder ("" when the folder is the model)
    columns: tuple[str, ...]  # the frame columns its scores fill


class _Measured(AccumulatorParam):
    """(role, partition) -> what that partition's predict step measured; a retried partition replaces its own."""

    def zero(self, value: dict[Any, Any]) -> dict[Any, Any]:
        return {}

    def addInPlace(self, a: dict[Any, Any], b: dict[Any, Any]) -> dict[Any, Any]:
        a.update(b)
        return a


def with_predictions(spark: Any, frame: Any, elsewhere: Elsewhere) -> tuple[Any, Any]:
    """`frame` with each model's scores appended, computed on the executors; and the accumulator their
    measurements arrive in once a job has run."""
    from pyspark.sql.types import DoubleType, StructField, StructType

    sc = spark.sparkContext
    jobs = []
    for role, (spec, pinned, columns) in elsewhere.models.items():
        # a cluster ships files, not folders: the pinned folder (uniquely named) goes as one archive, which
        # each executor unpacks; what it unpacked is checked file by file against the pin before loading
        folder = pinned.path if pinned.path.is_dir() else pinned.path.parent
        archive = Path(shutil.make_archive(str(folder), "zip", root_dir=folder))
        sc.addArchive(str(archive))
        inner = "" if pinned.path.is_dir() else pinned.path.name
        jobs.append(Job(role, spec, dict(pinned.files), archive.name, inner, columns))
    acc = sc.accumulator({}, _Measured())
    added = [StructField(c, DoubleType(), True) for job in jobs for c in job.columns]
    schema = StructType([*frame.schema.fields, *added])
    return frame.mapInArrow(
        functools.partial(_partition, jobs, elsewhere.task, elsewhere.exclude, acc), schema
    ), acc


def failure(exc: BaseException) -> GateError:
    """A failed Spark job as our error (exit 2), naming the partition where Spark's message does."""
    text = str(exc)
    found = _FAILED.search(text)
    if found:
        return GateError(
            f"partition {found.group(1)} failed on a Spark executor: {found.group(2)}",
            hint="nothing was decided from the other partitions; fix the cause and run again",
        )
    lost = _LOST.search(text)
    if lost:
        return GateError(
            f"partition {lost.group(1)} failed on Spark while models predicted: {lost.group(2)[:300]}",
            hint="an executor was lost or a task failed past spark.task.maxFailures; nothing was decided "
            "from the other partitions: check the executors' logs and memory, then run again",
        )
    first = next((line for line in text.splitlines() if line.strip()), type(exc).__name__)
    return GateError(
        f"Spark failed while models predicted: {first[:300]}",
        hint="nothing was decided; check the executors' logs, then run again",
    )


def summary(
    measured: dict[tuple[str, int], dict[str, Any]], elsewhere: Elsewhere
) -> dict[str, dict[str, Any]]:
    """One role's measurements over its partitions: the same fields as a local predict step, and where."""
    out = {}
    for role, (spec, _, _) in elsewhere.models.items():
        parts = [m for (r, _), m in sorted(measured.items()) if r == role]
        latencies = [x for m in parts for x in m["latencies"]]
        features: list[str] = next((m["features"] for m in parts if m["features"]), [])
        run = measures(spec, features, sum(m["rows"] for m in parts), 0.0, latencies)
        run["load_seconds"] = max((m["load_seconds"] for m in parts), default=0.0)
        run["peak_memory_bytes"] = max((m["peak_memory_bytes"] for m in parts), default=0)
        run["engine"] = {
            "name": "spark",
            "partitions": len(parts),
            "executors": len({m["executor"] for m in parts}),
        }
        out[role] = run
    return out


# ---- on the executors ---------------------------------------------------------------------------------------

_LOADED: dict[tuple[str, str], tuple[Adapter, float]] = {}  # one Python worker's verified, loaded models


def _partition(
    jobs: list[Job], task: Task, exclude: tuple[str, ...], acc: Any, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    from pyspark import TaskContext

    ctx = TaskContext.get()
    part = ctx.partitionId() if ctx is not None else 0
    try:
        yield from _scored(jobs, task, exclude, acc, part, batches)
    except Exception as exc:  # the driver reads the partition back out of this text
        text = (
            exc.message + (f" ({exc.where})" if exc.where else "")
            if isinstance(exc, GateError)
            else repr(exc)
        )
        raise RuntimeError(f"[{MARK} {part}] {' '.join(text.split())}") from None


@dataclass
class _Seen:
    """What one partition's predict step measured for one model."""

    rows: int = 0
    latencies: list[float] = field(default_factory=list)
    features: list[str] = field(default_factory=list)


def _scored(
    jobs: list[Job],
    task: Task,
    exclude: tuple[str, ...],
    acc: Any,
    part: int,
    batches: Iterator[pa.RecordBatch],
) -> Iterator[pa.RecordBatch]:
    models = [_loaded(job, task) for job in jobs]
    seen = {job.role: _Seen() for job in jobs}
    for batch in batches:
        arrays, names = list(batch.columns), list(batch.schema.names)
        for job, (adapter, _) in zip(jobs, models, strict=True):
            m = seen[job.role]
            if not m.features:
                m.features = features_of(job.spec, adapter.features, names, exclude)
                missing = [f for f in m.features if f not in names]
                if missing:
                    raise GateError(
                        f"the {job.role} model needs columns the data lacks: {', '.join(missing[:5])}"
                    )
            y = score(adapter, batch, m.features, job.spec, m.latencies)
            y = y if batch.num_rows else np.zeros((0, len(job.columns)))
            _check(y, job, m.rows)
            m.rows += batch.num_rows
            arrays += [pa.array(y[:, i], pa.float64()) for i in range(len(job.columns))]
            names += job.columns
        yield pa.RecordBatch.from_arrays(arrays, names=names)
    executor = (
        f"{socket.gethostname()}:{os.getppid()}"  # the Python daemon a worker forks from: one per executor
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    acc.add(
        {
            (job.role, part): {
                **vars(seen[job.role]),
                "load_seconds": load_s,
                "peak_memory_bytes": peak,
                "executor": executor,
            }
            for job, (_, load_s) in zip(jobs, models, strict=True)
        }
    )


def _loaded(job: Job, task: Task) -> tuple[Adapter, float]:
    """The model, loaded once per Python worker, from files checked against the pinned digests first."""
    from pyspark import SparkFiles

    root = Path(SparkFiles.get(job.shipped))
    path = root / job.inner if job.inner else root
    key = (str(path), "\n".join(f"{k} {v}" for k, v in sorted(job.files.items())))
    if key in _LOADED:
        return _LOADED[key]
    try:
        found = hash_tree(path)
    except OSError as exc:
        raise GateError(f"the {job.role} model's files are not on this executor ({exc.strerror})") from None
    if found != job.files:
        changed = sorted(set(found.items()) ^ set(job.files.items()))
        raise GateError(
            f"the {job.role} model's files on this executor differ from the digests pinned on the runner "
            f"({changed[0][0]}); refused before loading"
        )
    t0 = time.perf_counter()
    adapter = load(job.spec, model_file(path), task)
    _LOADED[key] = (adapter, time.perf_counter() - t0)
    return _LOADED[key]


def _check(y: np.ndarray, job: Job, before: int) -> None:
    """Scores are probabilities: the same rule the streaming pass applies to scores in the data."""
    bad = ~np.isfinite(y).all(axis=1) | (y < 0).any(axis=1) | (y > 1).any(axis=1)
    if y.shape[1] > 1:
        bad |= np.abs(y.sum(axis=1) - 1.0) > 1e-3
    if bad.any():
        row = before + int(np.flatnonzero(bad)[0]) + 1
        raise GateError(
            f"the {job.role} model returned {int(bad.sum())} scores that are not probabilities "
            f"(missing, NaN, outside [0, 1] or not summing to 1), first at row {row} of the partition"
        )
