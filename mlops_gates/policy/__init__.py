"""gates.yml -> schema validation (every problem, with its line) -> frozen, typed policy.

The family's public face: `load` and the typed policy; reading, schema, rules and building live beside it."""

from mlops_gates.policy.build import dataset, load, seconds
from mlops_gates.policy.model import (
    Columns,
    Dataset,
    Environment,
    FeastSource,
    GateSpec,
    Margin,
    ModelColumns,
    ModelSpec,
    OnOutcome,
    Policy,
    Problem,
    Promotion,
    Residency,
    Role,
    Settings,
    Signer,
    Threshold,
    WaiverRule,
    Waivers,
)
from mlops_gates.policy.schema import schema
from mlops_gates.policy.yaml_read import read_yaml

__all__ = [
    "Columns",
    "Dataset",
    "Environment",
    "FeastSource",
    "GateSpec",
    "Margin",
    "ModelColumns",
    "ModelSpec",
    "OnOutcome",
    "Policy",
    "Problem",
    "Promotion",
    "Residency",
    "Role",
    "Settings",
    "Signer",
    "Threshold",
    "WaiverRule",
    "Waivers",
    "dataset",
    "load",
    "read_yaml",
    "schema",
    "seconds",
]
