"""The Adult census features, by person, as a Feast feature view and the feature service the model reads."""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource
from feast.types import Int64, String

person = Entity(name="person", join_keys=["person_id"])

person_source = FileSource(
    name="person_source",
    path="data/person.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

person_features = FeatureView(
    name="person_features",
    entities=[person],
    ttl=timedelta(days=365),
    schema=[
        Field(name="age", dtype=Int64),
        Field(name="education_num", dtype=Int64),
        Field(name="hours_per_week", dtype=Int64),
        Field(name="capital_gain", dtype=Int64),
        Field(name="capital_loss", dtype=Int64),
        Field(name="workclass", dtype=String),
        Field(name="sex", dtype=String),
        Field(name="race", dtype=String),
    ],
    source=person_source,
)

income_model = FeatureService(name="income_model", features=[person_features])
