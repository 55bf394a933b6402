"""YAML with line numbers, safely: no aliases, YAML 1.2 booleans, bounded size and depth, text keys only."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

from mlops_gates.errors import PolicyError
from mlops_gates.policy.model import Problem

MAX_POLICY_BYTES = 1 << 20


class _NoAliasLoader(yaml.SafeLoader):
    """Refuses aliases, so a hostile file cannot expand without limit (billion laughs)."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.MarkedYAMLError(
                problem="anchors and aliases (*name) are not allowed in a policy; write the values out",
                problem_mark=event.start_mark,
            )
        return super().compose_node(parent, index)


# YAML 1.2 booleans: only true/false. YAML 1.1 would read the key `on:` (and yes/no/off) as a boolean.
_NoAliasLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_NoAliasLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


MAX_DEPTH = 32  # a policy is a few levels deep; deeper nesting is refused, never recursed into


def _to_python(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    path: str,
    lines: dict[str, int],
    problems: list[Problem],
    depth: int = 0,
) -> Any:
    line = node.start_mark.line + 1
    lines[path] = line
    if depth > MAX_DEPTH:
        problems.append((f"line {line}: {path}", f"nested more than {MAX_DEPTH} levels deep", None))
        return None
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            kline = key_node.start_mark.line + 1
            key = loader.construct_object(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                problems.append((f"line {kline}: {path or '(top level)'}", "a key must be plain text", None))
                continue
            child = f"{path}.{key}" if path else key
            if key in out:
                problems.append((f"line {kline}: {child}", "key appears twice", "keep one of them"))
            out[key] = _to_python(loader, value_node, child, lines, problems, depth + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _to_python(loader, n, f"{path}[{i}]", lines, problems, depth + 1)
            for i, n in enumerate(node.value)
        ]
    value = loader.construct_object(node)
    if isinstance(value, float) and not math.isfinite(value):
        problems.append((f"line {line}: {path}", f"{value} is not a finite number", "write a finite number"))
    return value


def read_yaml(path: Path) -> tuple[Any, dict[str, int], bytes]:
    """Parse a policy file; returns the data, a map from dotted path to line, and the raw bytes."""
    file = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PolicyError(
            [("file", "not found", "pass --policy PATH to an existing gates.yml")], file=file
        ) from None
    except OSError as exc:
        raise PolicyError([("file", f"cannot be read: {exc.strerror}", None)], file=file) from None
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError(
            [("file", f"is {len(raw)} bytes; a policy may be at most {MAX_POLICY_BYTES}", None)], file=file
        )
    if not raw.strip():
        raise PolicyError(
            [
                (
                    "file",
                    "is empty",
                    "start from the demo's policy: `mlops-gates demo` writes gate-out/gates.yml",
                )
            ],
            file=file,
        )
    loader = _NoAliasLoader(raw.decode("utf-8", errors="replace"))
    try:
        node = loader.get_single_node()
        problems: list[Problem] = []
        lines: dict[str, int] = {}
        data = _to_python(loader, node, "", lines, problems) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "file"
        raise PolicyError(
            [(where, f"YAML syntax: {exc.problem or exc.context}", "fix the YAML at that place")], file=file
        ) from None
    except yaml.YAMLError as exc:
        raise PolicyError([("file", f"YAML syntax: {exc}", None)], file=file) from None
    except RecursionError:
        raise PolicyError(
            [("file", f"nested more than {MAX_DEPTH} levels deep", "a policy is a few levels deep")],
            file=file,
        ) from None
    finally:
        loader.dispose()
    if problems:
        raise PolicyError(problems, file=file)
    return data, lines, raw
