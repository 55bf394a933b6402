"""Build the Feast demo from the Adult data packaged with mlops-gates: the person features as Feast's offline
store (with a person id and timestamps), the entity table to evaluate (person, time, income), and a model
trained on the training split. Some people also have a later feature row, recorded after the evaluation time:
point-in-time-correct retrieval must not see it.

Usage: python examples/feast/prepare.py [FOLDER]   (default: this folder); then, in FOLDER/feature_repo,
`feast apply` (with the Feast environment's feast), and `mlops-gates evaluate --policy FOLDER/gates.yml`.
"""

from __future__ import annotations

import json
import shutil
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

FEATURES = [
    "age",
    "education_num",
    "hours_per_week",
    "capital_gain",
    "capital_loss",
    "workclass",
    "sex",
    "race",
]
NUMERIC = FEATURES[:5]
START = pd.Timestamp("2026-01-01", tz="UTC")


def adult(split: str) -> pd.DataFrame:
    with resources.as_file(resources.files("mlops_gates.demo").joinpath(f"adult-{split}.parquet")) as p:
        return pd.read_parquet(p)


def train_model(folder: Path) -> None:
    import skops.io as sio
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    train = adult("train")
    model = Pipeline(
        [
            (
                "columns",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), NUMERIC),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), FEATURES[5:]),
                    ]
                ),
            ),
            ("clf", LogisticRegression(max_iter=500)),
        ]
    )
    model.fit(train[FEATURES], train["income"])
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    sio.dump(model, folder / "model.skops")
    (folder / "features.json").write_text(json.dumps(FEATURES))


def prepare(out: Path, rows: int = 4000, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    test = adult("test").head(rows).reset_index(drop=True)
    seen = START + pd.to_timedelta(rng.integers(0, 90 * 24, len(test)), unit="h")
    features = pd.DataFrame({"person_id": np.arange(len(test)), "event_timestamp": seen, "created": seen})
    for c in FEATURES:
        features[c] = test[c]
    later = features.sample(frac=0.25, random_state=seed).copy()  # recorded after the evaluation time
    later["event_timestamp"] = later["created"] = later["event_timestamp"] + pd.Timedelta(days=30)
    later["age"] = later["age"] + 40
    later["workclass"] = "Later-record"
    (out / "feature_repo" / "data").mkdir(parents=True, exist_ok=True)
    pd.concat([features, later]).to_parquet(out / "feature_repo" / "data" / "person.parquet", index=False)
    entities = pd.DataFrame(
        {
            "person_id": features["person_id"],
            "event_timestamp": seen + pd.Timedelta(days=1),
            "income": test["income"],
        }
    )
    entities.to_parquet(out / "entities.parquet", index=False)
    train_model(out / "model")


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else here
    if target != here:
        shutil.copytree(here, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("data", "model"))
    prepare(target)
    print(f"prepared {target}: now `feast apply` in {target / 'feature_repo'}, then mlops-gates evaluate")
