"""When the policy names models: pin each one, let it predict in its own process, and hand the gates a
table with the predictions beside the evaluation data, as if the user had written prediction columns."""

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
from mlops_gates.policy import Dataset, ModelColumns, Policy


@dataclass
class Staged:
    policy: Policy  # the policy with prediction columns in place of models
    pinned: dict[str, Pinned] = field(default_factory=dict)
    runs: dict[str, Run] = field(default_factory=dict)
    workdir: Path | None = None

    def record(self) -> dict[str, Any]:
        return {role: {**p.record(), "run": self.runs[role].metrics} for role, p in self.pinned.items()}

    def cleanup(self) -> None:
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def task_of(policy: Policy) -> Task:
    return Task(policy.task, policy.positive_label, policy.classes)


def stage(policy: Policy) -> Staged:
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
            private = dataclasses.replace(spec, path=staged.pinned[role].path)
            staged.runs[role] = run_child(
                role, private, task, policy.eval_data, workdir, exclude, staged.pinned[role].files
            )
        table = read_table(policy.eval_data, column_names(policy.eval_data))
        columns: dict[str, ModelColumns] = {}
        for role, run in staged.runs.items():
            preds = pq.read_table(run.predictions)
            if preds.num_rows != table.num_rows:
                raise GateError(
                    f"the {role} model returned {preds.num_rows} rows for {table.num_rows}",
                    where=str(policy.eval_data.path),
                )
            names = []
            for c in output_columns(task):
                name = f"__{role}_{c}"
                table = table.append_column(name, preds.column(c))
                names.append(name)
            columns[role] = (
                ModelColumns(names[0], ()) if task.kind == "regression" else ModelColumns(None, tuple(names))
            )
        merged = workdir / "evaluation+predictions.parquet"
        pq.write_table(table, merged)
        staged.policy = dataclasses.replace(
            policy,
            eval_data=Dataset(merged, "parquet", policy.eval_data.feast, policy.eval_data.origin),
            columns=dataclasses.replace(
                cols, candidate=columns["candidate"], baseline=columns.get("baseline", cols.baseline)
            ),
        )
        return staged
    except BaseException:
        staged.cleanup()
        raise
