"""Runs inside the deepchecks virtual environment (numpy 1, pandas 2): Parquet in, JSON out.

It imports nothing from mlops_gates, whose dependencies that environment does not have.
Usage: python deepchecks_runner.py JOB.json
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


def main(path):
    with open(path) as f:
        job = json.load(f)
    out: dict = {"results": []}
    try:
        warnings.filterwarnings("ignore")
        import pandas as pd
        from deepchecks.tabular import Dataset, Suite, checks, suites

        cols = job["columns"]
        cats = job.get("cat_features")

        def dataset(p):
            df = pd.read_parquet(p, columns=cols)
            return Dataset(df, label=job["label"], cat_features=cats)

        test = dataset(job["test"])
        suite = _suite(job, checks, suites, Suite)
        if job.get("train"):
            result = suite.run(train_dataset=dataset(job["train"]), test_dataset=test)
        else:
            result = suite.run(test)
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
