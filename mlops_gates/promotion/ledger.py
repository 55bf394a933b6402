"""Where the audit log lives: a folder with audit.jsonl, its head record, and the lock that makes each
promotion one atomic step (read state, check, write) among racing CI jobs."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlops_gates.errors import Busy
from mlops_gates.promotion.audit import AuditBroken, chained, head_of, parse

LOCK_TIMEOUT = 30.0


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Ledger:
    def __init__(self, root: Path):
        self.root = root
        self.log = root / "audit.jsonl"
        self.head = root / "audit.head.json"

    @contextlib.contextmanager
    def locked(self, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
        """An exclusive lock among racing CI jobs (filelock: flock on POSIX, released by the kernel if the holder
        dies, so no stale lock; msvcrt on Windows runners)."""
        from filelock import FileLock, Timeout

        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.root / ".lock", timeout=timeout)
        try:
            lock.acquire(poll_interval=0.05)
        except Timeout:
            raise Busy(
                f"another promotion has held the registry for over {timeout:.0f} s",
                where=str(self.root),
                hint="retry when it has finished",
            ) from None
        try:
            yield
        finally:
            lock.release()

    def entries(self) -> list[dict[str, Any]]:
        """The whole log, checked: every link of the chain, and its end against the head record. Anything
        that is not what mlops-gates writes (a folder, bytes that are not UTF-8, a head of another shape) is
        AuditBroken, never a crash."""
        text = _text(self.log, "the audit log")
        entries = parse(text.splitlines() if text is not None else [])
        raw = _text(self.head, "the head record")
        try:
            head = json.loads(raw) if raw is not None else {"seq": 0}
        except ValueError:
            head = None
        if not (
            isinstance(head, dict)
            and type(head.get("seq")) is int
            and (head["seq"] == 0 or isinstance(head.get("hash"), str))
        ):
            raise AuditBroken(
                len(entries), "the head record (audit.head.json) is not what mlops-gates writes"
            )
        if head.get("seq") != len(entries) or (entries and head.get("hash") != entries[-1]["hash"]):
            raise AuditBroken(
                len(entries) + 1 if head.get("seq", 0) > len(entries) else len(entries),
                f"the log ends at entry {len(entries)} but its head record says {head.get('seq')}: "
                "entries were removed or added by hand",
            )
        return entries

    def append(self, fields: dict[str, Any], entries: list[dict[str, Any]]) -> dict[str, Any]:
        """Append after the given (already read, under the lock) entries; returns the new entry."""
        entry = chained(fields, head_of(entries))
        with self.log.open("a") as f:
            f.write(json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        write_atomic(self.head, json.dumps({"seq": entry["seq"], "hash": entry["hash"]}) + "\n")
        return entry


def _text(path: Path, what: str) -> str | None:
    """A ledger file's text, None when it does not exist yet."""
    if not path.exists() and not path.is_symlink():
        return None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AuditBroken(0, f"{what} ({path.name}) cannot be read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise AuditBroken(line, f"{what} ({path.name}) holds bytes that are not UTF-8 text") from None
