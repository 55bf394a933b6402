"""When the policy names models: pin each one and let it predict, then hand the gates the evaluation data with
the predictions beside it, as if the user had written prediction columns. Models predict in a child process
here, or, with a query engine that runs where the data lives (Spark), on its executors (`Elsewhere`)."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from mlops_gates.data.reader import column_names, read_table
from mlops_gates.errors import GateError
from mlops_gates.models.base import Task
from mlops_gates.models.pin import Pinned, pin
from mlops_gates.models.predict import Run, output_columns, run_child
from mlops_gates.policy import Dataset, ModelColumns, ModelSpec, Policy

Beside = tuple[ModelSpec, Pinned, tuple[str, ...]]


@dataclass
class Elsewhere:
    """Models a query engine runs beside the data: each role's pinned copy and the columns its scores fill.
    The engine writes what each predict step measured into `measured`."""

    task: Task
    exclude: tuple[str, ...]  # columns that are never features (label, weight)
    models: dict[str, Beside]  # role -> its spec (on the pinned copy), pin and columns
    measured: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def columns(self) -> set[str]:
        return {c for _, _, cols in self.models.values() for c in cols}


@dataclass
class Staged:
    policy: Policy  # the policy with prediction columns in place of models
    pinned: dict[str, Pinned] = field(default_factory=dict)
    runs: dict[str, Run] = field(default_factory=dict)
    workdir: Path | None = None
    elsewhere: Elsewhere | None = None  # models that predict where the data lives, once its engine runs

    def settle(self) -> None:
        """Take the runs an engine measured beside the data, once it has run."""
        if self.elsewhere is not None:
            self.runs = {r: Run(None, m) for r, m in self.elsewhere.measured.items()}

    def record(self) -> dict[str, Any]:
        return {role: {**p.record(), "run": self.runs[role].metrics} for role, p in self.pinned.items()}

    def cleanup(self) -> None:
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def task_of(policy: Policy) -> Task:
    return Task(policy.task, policy.positive_label, policy.classes)


def prediction_columns(role: str, task: Task) -> tuple[str, ...]:
    """The columns a role's predictions fill, whoever computes them."""
    return tuple(f"__{role}_{c}" for c in output_columns(task))


def stage(policy: Policy, elsewhere: bool = False) -> Staged:
    """Pin the policy's models; unless `elsewhere`, let each predict here and join the scores to the data."""
    if not policy.models:
        return Staged(policy)
    workdir = Path(tempfile.mkdtemp(prefix="mlops-gates-"))
    staged = Staged(policy, workdir=workdir)
    try:
        task = task_of(policy)
        cols = policy.columns
        exclude = (cols.label, *([cols.weight] if cols.weight else []))
        for role, spec in policy.models.items():
            staged.pinned[role] = pin(spec.path, workdir)
        names = {role: prediction_columns(role, task) for role in policy.models}
        if elsewhere:
            beside = {
                role: (
                    dataclasses.replace(spec, path=staged.pinned[role].path),
                    staged.pinned[role],
                    names[role],
                )
                for role, spec in policy.models.items()
            }
            staged.elsewhere = Elsewhere(task, exclude, beside)
            data = policy.eval_data
        else:
            data = _predict_here(staged, task, exclude)
        columns = {
            role: ModelColumns(cs[0], ()) if task.kind == "regression" else ModelColumns(None, cs)
            for role, cs in names.items()
        }
        staged.policy = dataclasses.replace(
            policy,
            eval_data=data,
            columns=dataclasses.replace(
                cols, candidate=columns["candidate"], baseline=columns.get("baseline", cols.baseline)
            ),
        )
        return staged
    except BaseException:
        staged.cleanup()
        raise


def _predict_here(staged: Staged, task: Task, exclude: tuple[str, ...]) -> Dataset:
    """Each model predicts in a child process; the data with the scores beside it, in the work folder."""
    policy, workdir = staged.policy, staged.workdir
    assert workdir is not None
    for role, spec in policy.models.items():
        private = dataclasses.replace(spec, path=staged.pinned[role].path)
        staged.runs[role] = run_child(
            role, private, task, policy.eval_data, workdir, exclude, staged.pinned[role].files
        )
    table = read_table(policy.eval_data, column_names(policy.eval_data))
    for role, run in staged.runs.items():
        assert run.predictions is not None
        preds = pq.read_table(run.predictions)
        if preds.num_rows != table.num_rows:
            raise GateError(
                f"the {role} model returned {preds.num_rows} rows for {table.num_rows}",
                where=str(policy.eval_data.path),
            )
        for c, name in zip(output_columns(task), prediction_columns(role, task), strict=True):
            table = table.append_column(name, preds.column(c))
    merged = workdir / "evaluation+predictions.parquet"
    pq.write_table(table, merged)
    return Dataset(merged, "parquet", policy.eval_data.feast, policy.eval_data.origin)
