"""docs/components.md is generated from the GitLab components' `spec: inputs` (every input of every component,
with its type, default, options or shape). Regenerate: `python -m tests.plugins.test_component_docs`."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "components.md"
TEMPLATES = sorted((ROOT / "templates").glob("*.yml"))

HEADER = """# GitLab CI/CD components reference

Generated from `templates/` by `python -m tests.plugins.test_component_docs`; do not edit by hand. How to
include them and the example pipeline: [platforms.md](platforms.md#use-in-gitlab-ci).

```yaml
include:
  - component: $CI_SERVER_FQDN/mlops-gates/mlops-gates/evaluate@0.1.0
    inputs: {policy: gates.yml}
```
"""


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _spec(path: Path) -> dict:
    return yaml.safe_load(path.read_text().split("\n---\n", 1)[0])["spec"]


def markdown() -> str:
    out = [HEADER]
    for path in TEMPLATES:
        out += [
            f"## `{path.stem}`",
            "",
            "| input | type | default | allowed | what |",
            "|---|---|---|---|---|",
        ]
        for name, spec in _spec(path)["inputs"].items():
            default = spec.get("default")
            default = str(default).lower() if isinstance(default, bool) else default
            shown = (
                "required" if "default" not in spec else "(empty)" if default == "" else f"`{_cell(default)}`"
            )
            allowed = (
                ", ".join(f"`{o}`" for o in spec["options"])
                if "options" in spec
                else f"`{_cell(spec['regex'])}`"
                if "regex" in spec
                else ""
            )
            out.append(
                f"| `{name}` | {spec.get('type', 'string')} | {shown} | {allowed} | {_cell(spec.get('description', ''))} |"
            )
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def test_the_components_reference_is_generated_from_the_templates():
    assert DOC.read_text() == markdown()


def test_every_input_is_described():
    for path in TEMPLATES:
        for name, spec in _spec(path)["inputs"].items():
            assert spec.get("description"), f"{path.name}: {name}"


if __name__ == "__main__":
    DOC.write_text(markdown())
