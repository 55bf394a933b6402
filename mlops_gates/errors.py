"""One error base with a user-facing message and hint, and the exit codes (which are API)."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Any


class ExitCode(enum.IntEnum):
    PROMOTE = 0
    BLOCKED = 1  # HOLD or REJECT
    USAGE = 2  # usage, policy or data error
    UNEXPECTED = 3
    PUBLISH_FAILED = 4  # only with --strict: the decision could not be posted


class GateError(Exception):
    """An error a user can act on: what went wrong, where, and what to do."""

    exit_code = ExitCode.USAGE
    label = "error:"  # how the command line starts the message

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def render(self) -> str:
        head = f"{self.where}: {self.message}" if self.where else self.message
        return f"{head}\n  hint: {self.hint}" if self.hint else head


class PolicyError(GateError):
    """gates.yml is unreadable or invalid; carries every problem found, not only the first."""

    def __init__(self, problems: list[tuple[str, str, str | None]], *, file: str):
        self.problems = problems  # (where, message, hint)
        self.file = file
        lines = [f"{w}: {m}" + (f"\n    hint: {h}" if h else "") for w, m, h in problems]
        n = len(problems)
        super().__init__(f"{file}: {n} problem{'s' if n != 1 else ''} in the policy\n  " + "\n  ".join(lines))

    def render(self) -> str:
        return self.message


class DataError(GateError):
    """The evaluation data cannot be read or does not fit the policy's column mapping."""


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def read_json(path: Path, what: str, hint: str) -> Any:
    """A JSON file the user passed: missing or unreadable is a usage error that says what was expected."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise GateError("not found", where=str(path), hint=hint) from None
    except (OSError, ValueError) as exc:
        raise GateError(f"is not {what} ({exc})", where=str(path), hint=hint) from None
