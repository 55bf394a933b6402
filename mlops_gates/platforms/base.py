"""The driver interface, and the platform-neutral facts every driver posts: one status per gate and one overall."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mlops_gates.errors import GateError

STATUS_LIMIT = 140  # GitHub's commit-status description limit, in characters


@dataclass
class Published:
    platform: str
    comment: str | None = None  # "created", "updated" or "printed"
    comment_url: str | None = None
    statuses: int = 0
    files: dict[str, Path] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class Platform(Protocol):
    """What a platform's driver module knows of a CI run on it (github.py, gitlab.py implement it)."""

    NAME: str  # "github"
    TITLE: str  # "GitHub"
    TOKEN_ENV: str  # where its API token is, by default

    def here(self, env: Mapping[str, str]) -> bool: ...

    def context(self, env: Mapping[str, str]) -> dict[str, Any]: ...

    def untrusted(self, env: Mapping[str, str]) -> str | None: ...

    def actor(self, env: Mapping[str, str]) -> str | None: ...

    def no_identity_token(self, env: Mapping[str, str], why: str = "") -> GateError: ...

    def is_member(self, env: Mapping[str, str], token: str, team: str, user: str) -> bool: ...


class Driver(Protocol):
    name: str

    def publish(self, rec: dict[str, Any], report: str, out_dir: Path) -> Published: ...


@dataclass(frozen=True)
class StatusLine:
    context: str  # "mlops-gates" or "mlops-gates/<gate>"
    outcome: str  # "success", "failure" or "error"
    description: str


def clip(text: str, limit: int) -> str:
    """One line of at most `limit` characters (status descriptions, titles)."""
    from mlops_gates.report.escape import one_line

    text = one_line(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def status_lines(rec: dict[str, Any]) -> list[StatusLine]:
    """An overall status named `mlops-gates` (what branch protection requires) and one per gate."""
    verdict = rec["decision"]
    out = [
        StatusLine(
            "mlops-gates",
            "success" if verdict == "PROMOTE" else "failure",
            clip(f"{verdict}: {rec['reasons'][0]}", STATUS_LIMIT),
        )
    ]
    for g in rec["gates"]:
        outcome = {
            "PASS": "success",
            "WARN": "success",
            "WAIVED": "success",
            "SKIP": "success",
            "ERROR": "error",
        }.get(g["status"], "failure")
        out.append(
            StatusLine(
                f"mlops-gates/{g['name']}", outcome, clip(f"{g['status']}: {g['reason']}", STATUS_LIMIT)
            )
        )
    return out


def load_event(path: str | None) -> dict[str, Any]:
    if not path or not Path(path).is_file():
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
