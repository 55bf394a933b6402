"""The demo: train a baseline and a candidate on UCI Adult, score the test set, and gate the candidate."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlops_gates.errors import GateError

if TYPE_CHECKING:
    from mlops_gates.evaluation import Outcome

DATA = Path(__file__).resolve().parent  # the demo's data and policy ship in the package (README.md here)
NUMERIC = ["age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
CATEGORICAL = [
    "workclass",
    "education",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "native_country",
]
LABEL, POSITIVE = "income", ">50K"


def _matrix(table: pa.Table) -> np.ndarray:
    cols = [
        np.asarray(table.column(c).to_numpy(zero_copy_only=False), dtype=object)
        for c in NUMERIC + CATEGORICAL
    ]
    out = np.empty((table.num_rows, len(cols)), dtype=object)
    for i, c in enumerate(cols):
        out[:, i] = np.where(c == None, "missing", c) if i >= len(NUMERIC) else c.astype(float)  # noqa: E711
    return out


def train_and_score(train: pa.Table, test: pa.Table, seed: int = 0) -> dict[str, np.ndarray]:
    """Baseline: one-hot + logistic regression. Candidate: gradient-boosted trees. Returns test-set scores."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    X, Xt = _matrix(train), _matrix(test)
    y = np.asarray(train.column(LABEL).to_pylist()) == POSITIVE
    num = list(range(len(NUMERIC)))
    cat = list(range(len(NUMERIC), len(NUMERIC) + len(CATEGORICAL)))
    baseline = make_pipeline(
        ColumnTransformer(
            [("num", StandardScaler(), num), ("cat", OneHotEncoder(handle_unknown="ignore"), cat)]
        ),
        LogisticRegression(max_iter=2000),
    )
    candidate = make_pipeline(
        ColumnTransformer(
            [
                ("num", "passthrough", num),
                (
                    "cat",
                    OrdinalEncoder(
                        handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1
                    ),
                    cat,
                ),
            ]
        ),
        HistGradientBoostingClassifier(
            categorical_features=list(range(len(num), len(num) + len(cat))),
            max_iter=200,
            learning_rate=0.1,
            random_state=seed,
        ),
    )
    baseline.fit(X, y)
    candidate.fit(X, y)
    return {"baseline": baseline.predict_proba(Xt)[:, 1], "candidate": candidate.predict_proba(Xt)[:, 1]}


def run_demo(out_dir: Path, echo: Callable[[str], None] = print) -> Outcome:
    from mlops_gates.evaluation import run

    if not (DATA / "adult-train.parquet").is_file():
        raise GateError(
            "the demo data is missing from this installation",
            where=str(DATA),
            hint="reinstall mlops-gates (the wheel ships the demo's data), or run `make demo` in a clone",
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    train = pq.read_table(DATA / "adult-train.parquet")
    test = pq.read_table(DATA / "adult-test.parquet")
    echo(
        f"training a baseline (logistic regression) and a candidate (gradient boosting) on {train.num_rows:,} rows of UCI Adult ..."
    )
    scores = train_and_score(train, test)
    columns = {name: test.column(name) for name in test.column_names}
    for role, s in scores.items():
        columns[f"{role}_score"] = pa.array(s)
        columns[f"{role}_pred"] = pa.array(np.where(s >= 0.5, ">50K", "<=50K"))
    pq.write_table(pa.table(columns), out_dir / "predictions.parquet")
    pq.write_table(train, out_dir / "train.parquet")
    shutil.copyfile(DATA / "gates.yml", out_dir / "gates.yml")
    echo(f"scored {test.num_rows:,} test rows; gating with {out_dir / 'gates.yml'} ...")
    return run(out_dir / "gates.yml", out_dir)
