"""The policy reference, generated from the policy's JSON Schema (docs/policy-reference.md is this text; a test
keeps the two equal), so what the documentation says is what validation enforces."""

from __future__ import annotations

from typing import Any

from mlops_gates.policy.schema import schema

HEADER = """# Policy reference (`gates.yml`, version 1)

Generated from `mlops_gates/schemas/policy.v1.schema.json` by `mlops-gates policy reference`; do not edit by
hand. Every key, its type and limits; **required** keys are marked. `docs/policy.md` explains how the keys work
together; `mlops-gates policy check gates.yml` reports every problem of a file at once, each with its line.
"""


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = {**root["$defs"][name], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _kind(node: dict[str, Any]) -> str:
    """The value's type and limits, in words."""
    if "const" in node:
        return f"`{node['const']}`"
    if "enum" in node:
        return " | ".join(f"`{v}`" for v in node["enum"])
    if "oneOf" in node or "anyOf" in node:
        return " or ".join(_kind(n) for n in node.get("oneOf", node.get("anyOf", [])))
    kind = node.get("type", "any")
    kind = " or ".join(kind) if isinstance(kind, list) else str(kind)
    limits = [
        (key, f"{word} {node[key]}")
        for key, word in (
            ("minimum", "≥"),
            ("exclusiveMinimum", ">"),
            ("maximum", "≤"),
            ("exclusiveMaximum", "<"),
            ("minItems", "at least"),
            ("pattern", "matching"),
        )
        if key in node
    ]
    items = node.get("items")
    if kind == "array" and isinstance(items, dict) and "type" in items:
        each = items["type"]
        kind = f"list of {' or '.join(each) if isinstance(each, list) else each}"
    shown = [f"`{text}`" if key == "pattern" else text for key, text in limits]
    return kind + (f" ({', '.join(shown)})" if shown else "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _rows(node: dict[str, Any], path: str, root: dict[str, Any], out: list[str]) -> None:
    node = _resolve(node, root)
    required = set(node.get("required", []))
    for key, child in node.get("properties", {}).items():
        child = _resolve(child, root)
        here = f"{path}.{key}" if path else key
        mark = " **required**" if key in required else ""
        text = " ".join(str(child.get("description", "")).split())
        default = f"`{child['default']}`" if "default" in child else ""
        out.append(f"| `{here}`{mark} | {_cell(_kind(child))} | {default} | {_cell(text)} |")
        items = child.get("items")
        if isinstance(items, dict) and "properties" in _resolve(items, root):
            _rows(items, f"{here}[]", root, out)
        elif "properties" in child:
            _rows(child, here, root, out)


def markdown() -> str:
    root = schema()
    out = [HEADER, "## Top level", "", "| key | value | default | meaning |", "|---|---|---|---|"]
    _rows(root, "", root, out)
    gates = sorted(name for name in root["$defs"] if name.endswith("_gate"))
    for name in gates:
        gate = root["$defs"][name]
        out += ["", f"## `gates[]` of type `{gate['properties']['type']['const']}`", ""]
        out += ["| key | value | default | meaning |", "|---|---|---|---|"]
        _rows(gate, "", root, out)
    return "\n".join(out) + "\n"
