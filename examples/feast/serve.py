"""The demo's serving layer, run with the Feast environment's Python: materialize the offline features into the
online store, then, as a streaming job with a unit bug would, overwrite one feature online (hours_per_week
written as hours per day), serve every person through Feast's online API at one time, and log what was served
(entity, time served, each value, and when the values were computed) to served.parquet for the skew gate.

Usage: FEAST_PYTHON examples/feast/serve.py FOLDER   (after prepare.py and `feast apply`)
"""

import sys
from pathlib import Path

import pandas as pd
from feast import FeatureStore

SERVED_AT = pd.Timestamp("2026-08-01", tz="UTC")


def serve(folder: Path) -> None:
    store = FeatureStore(repo_path=str(folder / "feature_repo"))
    store.materialize(pd.Timestamp("2025-12-01", tz="UTC").to_pydatetime(), SERVED_AT.to_pydatetime())
    features = pd.read_parquet(folder / "feature_repo" / "data" / "person.parquet")
    latest = features.sort_values("event_timestamp").groupby("person_id").tail(1).copy()
    latest["hours_per_week"] = latest["hours_per_week"] // 7  # the bug: per day, not per week
    store.write_to_online_store("person_features", latest)
    people = sorted(latest["person_id"])
    response = store.get_online_features(
        features=store.get_feature_service("income_model"),
        entity_rows=[{"person_id": int(p)} for p in people],
    ).to_dict(include_event_timestamps=True)
    log = pd.DataFrame({k: v for k, v in response.items() if not k.endswith("__ts")})
    log["event_timestamp"] = SERVED_AT
    log["feature_timestamp"] = pd.to_datetime(response["age__ts"], unit="s", utc=True)
    log.to_parquet(folder / "served.parquet", index=False)


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
