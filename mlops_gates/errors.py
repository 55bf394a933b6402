"""Every error mlops-gates raises on purpose, and the exit codes (which are API). The command line catches
GateError once and exits with the error's code; anything else is a bug (exit 3).

    GateError           2  something the user can fix: a path, an option, a file (what, where, what to do)
    ├── PolicyError     2  gates.yml is invalid: every problem at once, each with its line
    ├── DataError       2  the data does not fit the policy (unreadable, missing column, invalid label)
    ├── RemoteError     5  a service (platform API, MLflow, Sigstore's token endpoint) failed or was unreachable
    │   └── PublishError 4 posting the decision failed (only with --strict; the decision's code stands)
    ├── VerificationFailed 1  a signature or attestation check failed: `check` names which
    ├── Refused         1  a promotion or rollback the rules or the evidence do not allow; nothing changed
    ├── Tampered        1  the registry or its log is not what mlops-gates wrote: never followed
    └── Busy            2  another promotion holds the registry's lock
"""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Any


class ExitCode(enum.IntEnum):
    PROMOTE = 0
    OK = 0  # the same code, for commands that check rather than decide (scan, verify, audit)
    BLOCKED = 1  # HOLD or REJECT; a check that failed; a refusal
    USAGE = 2  # usage, policy or data error
    UNEXPECTED = 3
    PUBLISH_FAILED = 4  # only with --strict: the decision could not be posted
    REMOTE = 5  # a service failed or could not be reached


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


class RemoteError(GateError):
    """A service answered with an error or could not be reached; `status` is its HTTP status, if any."""

    exit_code = ExitCode.REMOTE

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.status = status


class PublishError(RemoteError):
    """Posting to the platform failed; the decision stands, the publishing did not happen."""

    exit_code = ExitCode.PUBLISH_FAILED


class VerificationFailed(GateError):
    """A signature or attestation check failed: `check` names which."""

    exit_code = ExitCode.BLOCKED

    def __init__(self, check: str, message: str, where: str | None = None):
        super().__init__(f"{check}: {message}", where=where)
        self.check = check


class Refused(GateError):
    """A promotion or rollback that the evidence or the rules do not allow; nothing was changed."""

    exit_code = ExitCode.BLOCKED
    label = "REFUSED"


class Tampered(GateError):
    """The registry is not what mlops-gates wrote: never followed, always reported."""

    exit_code = ExitCode.BLOCKED
    label = "REFUSED"


class Busy(GateError):
    """Another promotion holds the registry."""


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
