"""Models predict on Spark's executors: the record equals the one a local run makes on the same rows, with one
executor and with two; and a model that fails on a partition, a file that differs on an executor, or an executor
lost mid-run is exit 2 naming the partition, with no record."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_gates.stats.engines import spark_predict
from tests.conftest import cli_main, write_policy
from tests.models.test_models import dataset, policy, train_sklearn

GATES = [
    {"type": "accuracy", "metrics": [{"metric": "roc_auc", "op": ">=", "value": 0.7}]},
    {
        "type": "regression",
        "metrics": [{"metric": "roc_auc", "margin": {"absolute": 0.02}}],
        "negative_flips": {"max_rate": 0.05, "per_group": True},
    },
    {"type": "fairness", "metrics": [{"metric": "demographic_parity_difference", "op": "<=", "value": 0.2}]},
    {"type": "budgets", "metrics": [{"metric": "latency_p95_ms", "op": "<=", "value": 60000}]},
]
TIMINGS = {"load_seconds", "latency_p50_ms", "latency_p95_ms", "peak_memory_bytes", "batches", "engine"}


def spark_session(master: str, **conf: str) -> Any:
    """A session the engine will find and use (a cluster's would come from spark-submit)."""
    if not shutil.which("java"):
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run the Spark engine; missing: java")
        pytest.skip("Spark needs Java")
    pyspark = pytest.importorskip("pyspark.sql")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # the driver and executors listen on loopback only
    os.environ["PYSPARK_PYTHON"] = os.environ.get("PYSPARK_PYTHON", "") or __import__("sys").executable
    active = pyspark.SparkSession.getActiveSession()
    if active is not None:
        active.stop()
    builder = pyspark.SparkSession.builder.master(master).config("spark.ui.enabled", "false")
    builder = builder.config("spark.ui.showConsoleProgress", "false").config(
        "spark.sql.session.timeZone", "UTC"
    )
    for key, value in {"spark.sql.files.maxPartitionBytes": "65536", **conf}.items():  # several partitions
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("OFF")
    return session


@pytest.fixture(scope="module", params=["local[1]", "local-cluster[2,1,1024]"], ids=["one", "two-executors"])
def spark(request) -> Iterator[Any]:
    session = spark_session(request.param, **{"spark.executor.memory": "768m", "spark.task.maxFailures": "1"})
    yield session
    session.stop()


@pytest.fixture
def world(tmp_path, monkeypatch) -> Path:
    """Real scikit-learn models and 20,000 rows in row groups of 2,000 (so, many partitions)."""
    monkeypatch.chdir(tmp_path)
    data = dataset(n=20000, seed=3)
    pq.write_table(
        pa.table({k: pa.array(v) for k, v in data.items()}), tmp_path / "eval.parquet", row_group_size=2000
    )
    train_sklearn(tmp_path, data, C=1.0, name="cand.skops")
    train_sklearn(tmp_path, data, C=0.001, name="base.skops")
    write_policy(
        tmp_path / "gates.yml",
        policy({"candidate": {"path": "cand.skops"}, "baseline": {"path": "base.skops"}}, GATES),
    )
    return tmp_path


def evaluate(monkeypatch, folder: Path, engine: str, out: str) -> int:
    return cli_main(
        monkeypatch,
        "evaluate",
        "--policy",
        str(folder / "gates.yml"),
        "--out",
        str(folder / out),
        "--engine",
        engine,
    )


def comparable(record: dict) -> dict:
    """The record without what differs between any two runs (time, memory, where models ran)."""
    rec = json.loads(json.dumps(record))
    rec.pop("created_at")
    for model in rec["inputs"]["models"].values():
        for key in TIMINGS:
            model["run"].pop(key, None)
    for gate in rec["gates"]:
        if gate["type"] == "budgets":  # latencies: measured, never equal twice
            gate["metrics"] = [
                {k: v for k, v in m.items() if k not in ("value", "ci")} for m in gate["metrics"]
            ]
            gate.pop("details", None)
    return rec


def test_executors_predict_the_record_a_local_run_makes(world, monkeypatch, spark):
    assert evaluate(monkeypatch, world, "arrow", "local") == 0
    assert evaluate(monkeypatch, world, "spark", "spark") == 0
    here = json.loads((world / "local" / "decision.json").read_text())
    there = json.loads((world / "spark" / "decision.json").read_text())
    assert comparable(there) == comparable(here)
    ran = there["inputs"]["models"]["candidate"]["run"]
    executors = 2 if spark.sparkContext.master.startswith("local-cluster") else 1
    assert ran["engine"]["name"] == "spark" and ran["rows"] == 20000
    assert (
        ran["engine"]["partitions"]
        == spark.read.parquet(str(world / "eval.parquet")).rdd.getNumPartitions()
        > 1
    )
    assert ran["engine"]["executors"] == executors
    assert ran["peak_memory_bytes"] > 10 * 2**20 and ran["latency_p95_ms"] > 0


def _partition_of(spark: Any, path: Path, row: int) -> int:
    """Spark's own answer to which partition holds a row (an oracle independent of our code)."""
    from pyspark.sql import functions as F

    frame = spark.read.parquet(str(path)).withColumn("p", F.spark_partition_id())
    return int(frame.filter(F.col("x1").isNull() | F.isnan("x1")).select("p").first()["p"])


def test_a_model_that_fails_on_one_partition_fails_the_evaluation(world, monkeypatch, spark, capsys):
    table = pq.read_table(world / "eval.parquet")
    x1 = table.column("x1").to_numpy().copy()
    x1[15001] = np.nan  # scikit-learn's LogisticRegression refuses NaN: this row's partition fails
    pq.write_table(table.set_column(0, "x1", pa.array(x1)), world / "eval.parquet", row_group_size=2000)
    part = _partition_of(spark, world / "eval.parquet", 15001)
    assert part > 0
    assert evaluate(monkeypatch, world, "spark", "out") == 2
    err = capsys.readouterr().err
    assert f"partition {part} failed on a Spark executor" in err and "NaN" in err, err
    assert "Traceback" not in err and not (world / "out" / "decision.json").exists()


def test_a_model_file_that_differs_on_an_executor_is_never_loaded(world, monkeypatch, spark, capsys):
    ship = spark_predict.with_predictions

    def swapped(session, frame, elsewhere):  # the shipped copy is replaced after the runner pinned it
        out = ship(session, frame, elsewhere)
        from pyspark import SparkFiles

        _, pinned, _ = elsewhere.models["candidate"]
        archive = pinned.path.parent.with_suffix(".zip")
        with zipfile.ZipFile(archive, "w") as z:  # what the driver serves to executors that fetch it
            z.write(world / "base.skops", pinned.path.name)
        unpacked = Path(SparkFiles.getRootDirectory()) / archive.name / pinned.path.name
        if unpacked.exists():  # local mode: the executor reads the driver's unpacked copy
            unpacked.write_bytes((world / "base.skops").read_bytes())
        return out

    monkeypatch.setattr(spark_predict, "with_predictions", swapped)
    assert evaluate(monkeypatch, world, "spark", "out") == 2
    err = capsys.readouterr().err
    assert "the candidate model's files on this executor differ from the digests pinned" in err, err
    assert "partition " in err and not (world / "out" / "decision.json").exists()


def _processes(parent_has: bytes) -> list[int]:
    """Processes whose parent's command line holds `parent_has`: a Spark executor's Python worker daemon, or
    the workers that daemon forked."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit():
                ppid = (proc / "stat").read_text().rsplit(")", 1)[1].split()[1]
                if parent_has in Path(f"/proc/{ppid}/cmdline").read_bytes():
                    found.append(int(proc.name))
        except (OSError, IndexError):
            continue
    return found


def _kill_while_busy(session: Any, victim: str, killed: list[int]) -> None:
    """While the first partitions load their models: SIGKILL an executor (the JVM whose child is a Python
    daemon) or one Python worker (a process the daemon forked)."""
    tracker = session.sparkContext.statusTracker()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not killed:
        stages = [tracker.getStageInfo(s) for s in tracker.getActiveStageIds()]
        if any(s is not None and s.numActiveTasks > 0 for s in stages):
            daemons = [
                p
                for p in _processes(b"CoarseGrainedExecutorBackend")
                if b"pyspark.daemon" in Path(f"/proc/{p}/cmdline").read_bytes()
            ]
            workers = [w for d in daemons for w in _processes(b"pyspark.daemon") if _parent(w) == d]
            if victim == "worker" and workers:
                os.kill(workers[0], signal.SIGKILL)
                killed.append(workers[0])
            elif victim == "executor" and daemons:
                os.kill(_parent(daemons[0]), signal.SIGKILL)
                killed.append(daemons[0])
        time.sleep(0.05)


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.mark.parametrize(
    ("victim", "tries"),
    [("executor", 1), ("worker", 1), ("executor", 4)],
    ids=["executor", "worker", "retried"],
)
def test_a_lost_executor_or_crashed_worker_fails_unless_spark_recomputes(
    world, monkeypatch, spark, capsys, victim, tries
):
    """An executor lost mid-run, or a Python worker that dies (out of memory, a crash), fails its partition's
    task, and with no tries left the run: exit 2 naming the partition. With tries left, Spark recomputes the
    partition on another executor, and the record is the whole one, as a local run makes it."""
    if not spark.sparkContext.master.startswith("local-cluster"):
        pytest.skip("local mode has no executor apart from the driver")
    if tries > 1:
        assert evaluate(monkeypatch, world, "arrow", "local") == 0
    conf = {"spark.executor.memory": "768m", "spark.task.maxFailures": str(tries)}
    session = spark_session("local-cluster[2,1,1024]", **conf)  # fresh executors: no model loaded yet
    killed: list[int] = []
    killer = threading.Thread(target=_kill_while_busy, args=(session, victim, killed))
    killer.start()
    try:
        code = evaluate(monkeypatch, world, "spark", "out")
    finally:
        killed.append(0)  # stops the killer if the run ended first
        killer.join()
    err = capsys.readouterr().err
    assert killed[0] != 0, "the run ended before an executor was busy"
    if tries > 1:
        assert code == 0, err
        here = json.loads((world / "local" / "decision.json").read_text())
        there = json.loads((world / "out" / "decision.json").read_text())
        assert comparable(there) == comparable(here)
        return
    assert code == 2 and re.search(r"partition \d+ failed on Spark while models predicted", err), err
    assert ("ExecutorLostFailure" if victim == "executor" else "Python worker exited unexpectedly") in err, (
        err
    )
    assert "Traceback" not in err and not (world / "out" / "decision.json").exists()
