"""The policy's JSON Schema, its problems in the user's words (line, key, a suggestion), and `where`."""

from __future__ import annotations

from typing import Any

from mlops_gates.policy import metrics as M
from mlops_gates.policy.model import Problem
from mlops_gates.schemas import schema_file

DURATION = "^[0-9]+(s|m|h|d)$"


def schema() -> dict[str, Any]:
    return schema_file("policy.v1.schema.json")


def where(path: list[Any], lines: dict[str, int]) -> str:
    dotted = ""
    for p in path:
        dotted = f"{dotted}[{p}]" if isinstance(p, int) else (f"{dotted}.{p}" if dotted else str(p))
    probe = dotted
    while probe and probe not in lines:
        probe = probe.rsplit(".", 1)[0] if "." in probe else probe.rsplit("[", 1)[0] if "[" in probe else ""
    line = lines.get(probe or "", 1)
    return f"line {line}: {dotted or '(top level)'}"


def schema_problems(data: Any, lines: dict[str, int]) -> list[Problem]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    problems: list[Problem] = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        if err.validator in ("if", "allOf") and err.context:
            continue  # reported through its sub-errors
        hint = None
        msg = err.message
        if err.validator == "additionalProperties":
            allowed = sorted((err.schema.get("properties") or {}).keys())
            extra = [k for k in err.instance if k not in allowed] if isinstance(err.instance, dict) else []
            for key in extra:
                s = M.suggest(str(key), allowed)
                problems.append(
                    (
                        where([*err.absolute_path, key], lines),
                        f"unknown key '{key}'",
                        f"did you mean '{s}'?" if s else f"allowed keys: {', '.join(allowed)}",
                    )
                )
            continue
        if err.validator == "enum":
            choices = [str(x) for x in err.validator_value]
            s = (
                str(err.instance)[::-1]
                if str(err.instance)[::-1] in choices
                else M.suggest(str(err.instance), choices)
            )
            hint = f"did you mean '{s}'?" if s else f"use one of: {', '.join(map(str, err.validator_value))}"
        elif err.validator == "required":
            hint = "add it"
        elif err.validator == "type":
            hint = f"write a {err.validator_value}"
        elif err.validator == "oneOf" and "signers" in err.absolute_path:
            msg = "a signer is either a key or an identity with its issuer"
            hint = "write {key: release.pub} or {identity: URI, issuer: URL} (or identity_regexp)"
        elif err.validator == "pattern" and err.validator_value == DURATION:
            hint = "write a duration: 90s, 30m, 12h or 7d"
        problems.append((where(list(err.absolute_path), lines), msg, hint))
    return problems
