"""docs/actions.md is generated from the action files (every input and output of every action, in a table),
and the actions follow the Marketplace's conventions. Regenerate: `python -m tests.plugins.test_action_docs`."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "actions.md"
ACTIONS = [ROOT / "action.yml", *sorted((ROOT / "actions").glob("*/action.yml"))]

HEADER = """# GitHub Actions reference

Generated from the action files by `python -m tests.plugins.test_action_docs`; do not edit by hand. How to use
them, the workflows to copy and the tag policy: [platforms.md](platforms.md).
"""


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def markdown() -> str:
    out = [HEADER]
    for path in ACTIONS:
        action = yaml.safe_load(path.read_text())
        ref = (
            "mlops-gates/mlops-gates@v0"
            if path.parent == ROOT
            else f"mlops-gates/mlops-gates/{path.parent.name}@v0"
        )
        out += [f"## `{ref}`", "", _cell(action["description"]), ""]
        inputs = action.get("inputs") or {}
        if inputs:
            out += ["| input | required | default | what |", "|---|---|---|---|"]
            for name, spec in inputs.items():
                default = spec.get("default")
                default = "(empty)" if default == "" else f"`{_cell(default)}`" if default is not None else ""
                required = "yes" if spec.get("required") else ""
                out.append(f"| `{name}` | {required} | {default} | {_cell(spec.get('description', ''))} |")
            out.append("")
        outputs = action.get("outputs") or {}
        if outputs:
            out += ["| output | what |", "|---|---|"]
            out += [f"| `{name}` | {_cell(spec.get('description', ''))} |" for name, spec in outputs.items()]
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def test_the_actions_reference_is_generated_from_the_action_files():
    assert DOC.read_text() == markdown()


def test_actions_follow_the_marketplace_conventions():
    for path in ACTIONS:
        action = yaml.safe_load(path.read_text())
        assert len(action["description"]) < 125, path  # the Marketplace form's limit
        for kind in ("inputs", "outputs"):
            for name, spec in (action.get(kind) or {}).items():
                assert spec.get("description"), f"{path}: {kind[:-1]} {name} has no description"


if __name__ == "__main__":
    DOC.write_text(markdown())
