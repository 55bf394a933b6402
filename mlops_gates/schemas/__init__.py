"""The JSON Schemas of everything mlops-gates reads or writes, and the one way to load them."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from mlops_gates.errors import GateError, read_json


@cache
def schema_file(name: str) -> dict[str, Any]:
    """One of the package's JSON Schemas (mlops_gates/schemas/)."""
    loaded: dict[str, Any] = json.loads(resources.files("mlops_gates.schemas").joinpath(name).read_text())
    return loaded


def read_record(path: Path) -> dict[str, Any]:
    """Read and check a decision record; a broken one is a usage error, never posted."""
    import jsonschema

    rec: dict[str, Any] = read_json(
        path, "a JSON decision record", "pass the decision.json that evaluate wrote"
    )
    errors = sorted(
        jsonschema.Draft202012Validator(schema_file("decision.v1.schema.json")).iter_errors(rec), key=str
    )
    if errors:
        where = "/".join(map(str, errors[0].absolute_path)) or "(top level)"
        raise GateError(
            f"is not a valid decision record: {where}: {errors[0].message}",
            where=str(path),
            hint="publish the decision.json that evaluate wrote, unchanged",
        )
    return rec
