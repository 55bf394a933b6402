"""Runs inside the deepchecks virtual environment (numpy 1, pandas 2): Parquet in, JSON out.

It imports nothing from mlops_gates, whose dependencies that environment does not have.
Usage: python runner.py JOB.json
"""

import json
import sys
import traceback
import warnings


def _suite(job, checks_mod, suites_mod, Suite):
    suite = getattr(suites_mod, job["suite"])() if job.get("suite") else Suite("custom checks")
    for spec in job.get("checks") or []:
        check = getattr(checks_mod, spec["name"])(**(spec.get("params") or {}))
        for cond in spec.get("conditions") or []:
            check = getattr(check, cond["name"])(**(cond.get("params") or {}))
        suite.add(check)
    drop = set(job.get("exclude") or [])
    for idx, check in list(suite.checks.items()):
        if type(check).__name__ in drop or check.name() in drop:
            suite.remove(idx)
    return suite


def _model_outputs(job, frames, np):
    """Predictions made outside this environment (the model never loads here): y_pred / y_proba per side."""
    spec = job.get("predictions")
    if not spec:
        return {}
    labels = set()
    for df in frames.values():
        labels |= set(df[job["label"]].dropna().tolist())
    kwargs = {}
    if spec["kind"] != "regression":
        classes = sorted(labels | set(spec.get("classes") or []))
        kwargs["model_classes"] = classes
    for side, df in frames.items():
        if spec["kind"] == "regression" or spec.get("prediction"):
            kwargs[f"y_pred_{side}"] = df[spec["prediction"]].to_numpy()
        if spec["kind"] == "binary" and spec["scores"]:
            if len(classes) != 2:
                raise ValueError(f"a binary task needs 2 label values, found {len(classes)}: {classes}")
            s = df[spec["scores"][0]].to_numpy(dtype=float)
            pos = classes.index(spec["positive"])
            proba = np.column_stack([s, 1 - s] if pos == 0 else [1 - s, s])
            kwargs[f"y_proba_{side}"] = proba
            other = classes[1 - pos]
            kwargs.setdefault(
                f"y_pred_{side}", np.where(s >= spec["threshold"], spec["positive"], other).astype(object)
            )
        elif spec["kind"] == "multiclass" and spec["scores"]:
            given = list(spec["classes"])
            proba = np.column_stack(
                [df[spec["scores"][given.index(c)]].to_numpy(dtype=float) for c in classes]
            )
            kwargs[f"y_proba_{side}"] = proba
            kwargs.setdefault(f"y_pred_{side}", np.asarray(classes, dtype=object)[proba.argmax(axis=1)])
    return kwargs


def main(path):
    with open(path) as f:
        job = json.load(f)
    out: dict = {"results": []}
    try:
        warnings.filterwarnings("ignore")
        import numpy as np
        import pandas as pd
        from deepchecks.tabular import Dataset, Suite, checks, suites

        cols = job["columns"]
        cats = job.get("cat_features")

        preds = job.get("predictions") or {}
        extra = [c for c in [preds.get("prediction"), *preds.get("scores", [])] if c]
        # one dataset runs as deepchecks' "train" side, so its predictions are y_*_train
        sides = {"train": job["train"], "test": job["test"]} if job.get("train") else {"train": job["test"]}
        frames = {k: pd.read_parquet(p, columns=list(dict.fromkeys(cols + extra))) for k, p in sides.items()}
        model = _model_outputs(job, frames, np)
        data = {
            f"{k}_dataset": Dataset(df[cols], label=job["label"], cat_features=cats)
            for k, df in frames.items()
        }
        result = _suite(job, checks, suites, Suite).run(**data, **model)
        for res in result.results:
            item = {"header": res.get_header(), "check": type(res.check).__name__}
            if hasattr(res, "conditions_results"):
                item["conditions"] = [
                    {"category": c.category.value, "name": c.name, "details": c.details}
                    for c in res.conditions_results
                ]
            else:
                item["not_run"] = str(res.exception)
            out["results"].append(item)
        result.save_as_html(job["html"], as_widget=False)
    except Exception as exc:  # reported to the gate as ERROR, with the last lines of the traceback
        out["error"] = f"{type(exc).__name__}: {exc}"
        out["traceback"] = traceback.format_exc()[-2000:]
    with open(job["out"], "w") as f:
        json.dump(out, f)
    return 3 if "error" in out else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
