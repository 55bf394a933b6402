"""Runs inside the Feast environment (pandas 2): a job in, Parquet and JSON out.

It imports nothing from mlops_gates, whose dependencies that environment does not have.
Usage: python feast_runner.py JOB.json   (the answer goes to the job's "answer" path)

historical: point-in-time-correct features for an entity table (Feast's get_historical_features), in the
entity table's row order, with what the evidence needs to be rebuilt: the project, the feature service, and
each feature view's definition digest (its spec, serialised deterministically).
"""

import hashlib
import json
import os
import sys
import traceback

# this file's folder holds other modules of mlops_gates (one is feature_store.py): not Feast's to import
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

ROW = "__mlops_gates_row"


def _entities(path, pd):
    if path.endswith(".csv"):
        return pd.read_csv(path, parse_dates=["event_timestamp"])
    return pd.read_parquet(path)


def _features(store, spec):
    """A feature service by name, or a list of "view:feature" references."""
    if isinstance(spec, str):
        return store.get_feature_service(spec), spec
    return list(spec), None


def _views(store, features, service):
    names = (
        [p.name for p in service.feature_view_projections]
        if service is not None
        else sorted({f.split(":", 1)[0] for f in features})
    )
    out = []
    for name in names:
        view = store.get_feature_view(name)
        spec = view.to_proto().spec.SerializeToString(deterministic=True)
        out.append(
            {
                "name": name,
                "digest": "sha256:" + hashlib.sha256(spec).hexdigest(),
                "ttl_seconds": view.ttl.total_seconds() if view.ttl else None,
                "join_keys": [c.name for c in view.entity_columns],
                "features": [f.name for f in view.features],
            }
        )
    return out


def historical(job):
    import pandas as pd
    from feast import FeatureStore

    store = FeatureStore(repo_path=job["repo"])
    entities = _entities(job["entities"], pd)
    if "event_timestamp" not in entities.columns:
        raise ValueError("the entity table has no event_timestamp column")
    if ROW in entities.columns:
        raise ValueError(f"the entity table has a column named {ROW}")
    features, name = _features(store, job["features"])
    service = features if name is not None else None
    views = _views(store, job["features"], service)
    if job.get("keys_only"):
        keys = sorted({k for v in views for k in v["join_keys"]})
        entities = entities[[*keys, "event_timestamp"]].copy()
    entities[ROW] = range(len(entities))
    df = store.get_historical_features(entity_df=entities, features=features).to_df()
    df = df.sort_values(ROW, kind="stable").drop(columns=[ROW]).reset_index(drop=True)
    df.to_parquet(job["out"], index=False)
    return {
        "project": store.project,
        "feature_service": name,
        "feature_views": views,
        "rows": len(df),
        "columns": list(df.columns),
    }


def main():
    with open(sys.argv[1]) as f:
        job = json.load(f)
    try:
        answer = {"ok": {"historical": historical}[job["action"]](job)}
    except Exception as exc:  # every failure goes back as data: the caller turns it into a clear error
        answer = {"error": f"{type(exc).__name__}: {exc}"[:2000], "trace": traceback.format_exc()[-4000:]}
    with open(job["answer"], "w") as f:
        json.dump(answer, f)


if __name__ == "__main__":
    main()
