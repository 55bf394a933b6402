"""scikit-learn models: skops files with an explicit allow-list of types; pickle or joblib only when the
policy trusts them and the run is not about a fork's code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mlops_gates.errors import GateError
from mlops_gates.models.allowlist import allowed_dotted
from mlops_gates.models.base import Task
from mlops_gates.models.scan import scan_file
from mlops_gates.platforms.ci import untrusted_reason
from mlops_gates.policy import ModelSpec


def _load_skops(path: Path) -> Any:
    try:
        import skops.io as sio
    except ImportError:
        raise GateError(
            "reading .skops files needs skops", where=str(path), hint="pip install skops"
        ) from None
    try:
        untrusted = sio.get_untrusted_types(file=str(path))
    except Exception as exc:
        raise GateError(
            f"is not a readable skops file ({type(exc).__name__}: {exc})",
            where=str(path),
            hint="save the model again with skops.io.dump",
        ) from None
    refused = sorted(t for t in untrusted if not allowed_dotted(t))
    if refused:
        raise GateError(
            f"refused: the file needs types outside the allow-list: {', '.join(refused)}",
            where=str(path),
            hint="only reviewed numpy, scikit-learn estimator and tree types load; a function or another "
            "type could run code",
        )
    return sio.load(str(path), trusted=untrusted)


def _load_pickle(spec: ModelSpec, path: Path, fmt: str) -> Any:
    if spec.trust != "pickle":
        raise GateError(
            f"refused: {fmt} files can run code when loaded",
            where=str(path),
            hint="save the model with skops (.skops), or set trust: pickle for this model if you trust its source",
        )
    why = untrusted_reason()
    if why:
        raise GateError(
            f"refused: {fmt} files never load when {why}",
            where=str(path),
            hint="save the model with skops (.skops)",
        )
    report = scan_file(path, joblib=fmt == "joblib")[0]
    if report.unsafe:
        raise GateError(
            f"refused: the pickle imports {', '.join(report.unsafe)}",
            where=str(path),
            hint="this file would run code outside numpy and scikit-learn when loaded; do not trust it",
        )
    if not report.safe:  # loading needs a walk to the end, never merely "nothing bad seen"
        raise GateError(
            f"refused: the {fmt} file cannot be checked ({report.note})",
            where=str(path),
            hint="save the model again (with skops); a file the scanner cannot walk to its end never loads",
        )
    try:
        if fmt == "joblib":
            import joblib

            return joblib.load(path)
        import pickle

        with path.open("rb") as f:
            return pickle.load(f)  # noqa: S301 - trusted by policy, scanned above
    except Exception as exc:
        raise GateError(
            f"cannot be loaded ({type(exc).__name__}: {exc})", where=str(path), hint="is the file complete?"
        ) from None


@dataclass
class SklearnAdapter:
    model: Any
    task: Task
    where: str
    features: list[str] | None = None

    def __post_init__(self) -> None:
        names = getattr(self.model, "feature_names_in_", None)
        self.features = [str(n) for n in names] if names is not None else None
        if self.task.kind != "regression":
            if not hasattr(self.model, "predict_proba"):
                raise GateError(
                    "the model has no predict_proba",
                    where=self.where,
                    hint="a classification gate needs probabilities",
                )
            classes = [str(c) for c in self.model.classes_]
            want = (
                [str(self.task.positive_label)]
                if self.task.kind == "binary"
                else [str(c) for c in self.task.classes]
            )
            missing = [c for c in want if c not in classes]
            if missing or (self.task.kind == "multiclass" and len(classes) != len(want)):
                raise GateError(
                    f"the model's classes {classes} do not match the label's {want}",
                    where=self.where,
                    hint="train on the same label values the policy names",
                )
            self.columns = [classes.index(c) for c in want]

    def predict(self, batch: pa.RecordBatch, columns: list[str]) -> np.ndarray:
        if self.features is not None:
            try:
                import pandas as pd
            except ImportError:
                raise GateError(
                    "this model was trained on a DataFrame; predicting needs pandas",
                    where=self.where,
                    hint="pip install pandas",
                ) from None
            X: Any = pd.DataFrame({c: batch.column(c).to_numpy(zero_copy_only=False) for c in self.features})
        else:
            X = np.column_stack([batch.column(c).to_numpy(zero_copy_only=False) for c in columns])
        try:
            if self.task.kind == "regression":
                return np.asarray(self.model.predict(X), dtype=np.float64)
            return np.asarray(self.model.predict_proba(X), dtype=np.float64)[:, self.columns]
        except (ValueError, TypeError, KeyError) as exc:
            raise GateError(
                f"the model cannot predict on these features ({type(exc).__name__}: {str(exc)[:300]})",
                where=self.where,
                hint="check the feature columns and their types against what the model was trained on",
            ) from None


def load_sklearn(spec: ModelSpec, path: Path, fmt: str, task: Task) -> SklearnAdapter:
    model = _load_skops(path) if fmt == "skops" else _load_pickle(spec, path, fmt)
    from mlops_gates.models.tree_check import check_trees

    check_trees(model, str(spec.path))
    return SklearnAdapter(model, task, str(spec.path))
