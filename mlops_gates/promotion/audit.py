"""The audit log: one JSON line an event, each holding the hash of the one before, so an edited, removed or
reordered entry breaks the chain; a head record catches a cut tail. Replaying the log gives every
environment's state, which the registry's pointer files must match."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

GENESIS = "sha256:" + "0" * 64
SCHEMA_ID = "https://mlops-gates.dev/schemas/audit-entry.v1.schema.json"


class AuditBroken(Exception):
    """The log is not what was written: names the first entry that does not hold."""

    def __init__(self, seq: int, why: str):
        super().__init__(f"entry {seq}: {why}")
        self.seq = seq
        self.why = why


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def stamp(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def chained(fields: dict[str, Any], head: tuple[int, str]) -> dict[str, Any]:
    """The next entry after head (seq, hash)."""
    entry = {"$schema": SCHEMA_ID, "seq": head[0] + 1, "prev": head[1], **fields}
    entry["hash"] = entry_hash(entry)
    return entry


def parse(lines: list[str]) -> list[dict[str, Any]]:
    """Entries from the log's lines; raises AuditBroken at the first that is not a link of the chain."""
    import jsonschema

    from mlops_gates.schemas import schema_file

    validator = jsonschema.Draft202012Validator(schema_file("audit-entry.v1.schema.json"))
    entries: list[dict[str, Any]] = []
    prev = GENESIS
    for i, line in enumerate(lines, 1):
        try:
            e = json.loads(line)
        except ValueError:
            raise AuditBroken(i, "is not JSON (cut short or edited)") from None
        err = next(iter(validator.iter_errors(e)), None)
        if err is not None:
            raise AuditBroken(i, f"does not follow the entry schema: {err.message}")
        if e["seq"] != i:
            raise AuditBroken(i, f"has sequence number {e['seq']}: an entry is missing or out of order")
        if e["prev"] != prev:
            raise AuditBroken(i, "does not follow the entry before it (the chain is broken)")
        if e["hash"] != entry_hash(e):
            raise AuditBroken(i, "was changed after it was written (its hash does not match)")
        entries.append(e)
        prev = e["hash"]
    return entries


def head_of(entries: list[dict[str, Any]]) -> tuple[int, str]:
    return (entries[-1]["seq"], entries[-1]["hash"]) if entries else (0, GENESIS)


@dataclass
class Pointer:
    """What an environment serves: a stable version and perhaps a canary taking part of the traffic."""

    digest: str | None = None
    since: str | None = None
    canary: dict[str, Any] | None = None  # {"digest", "traffic", "since"}
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier stable versions, oldest first
    entry: str = GENESIS  # the audit entry that set this state
    slot: str = "blue"  # blue-green: the slot that serves
    preview: dict[str, Any] | None = None  # blue-green: {"digest", "since", "slot"}, in the idle slot

    def as_json(self, model: str, env: str) -> dict[str, Any]:
        """The pointer as stored; the blue-green fields only where they say something (so the pointers of
        registries written before them read the same)."""
        fields = {k: v for k, v in self.__dict__.items() if k not in ("slot", "preview")}
        if self.slot != "blue":
            fields["slot"] = self.slot
        if self.preview is not None:
            fields["preview"] = self.preview
        return {"model": model, "environment": env, **fields}


def idle(slot: str) -> str:
    return "green" if slot == "blue" else "blue"


def replay(entries: list[dict[str, Any]]) -> dict[tuple[str, str], Pointer]:
    """Every (model, environment)'s state, from the log alone."""
    state: dict[tuple[str, str], Pointer] = {}
    for e in entries:
        if e["outcome"] != "done" or e["action"] not in ("promote", "canary", "preview", "rollback"):
            continue
        p = state.setdefault((e["model"], e["to"]), Pointer())
        if e["action"] == "canary":
            p.canary = {"digest": e["digest"], "traffic": e["traffic"], "since": e["time"]}
        elif e["action"] == "preview":
            p.preview = {"digest": e["digest"], "since": e["time"], "slot": idle(p.slot)}
        elif e["action"] == "promote":
            _promote(p, e)
        elif p.canary is not None and e["replaced"] == p.canary["digest"]:  # rollback of a canary
            p.canary = None
        elif p.preview is not None and e["replaced"] == p.preview["digest"]:  # a preview withdrawn
            p.preview = None
        else:  # rollback to an earlier stable version (blue-green: back to the slot that still holds it)
            while p.history and p.history[-1]["digest"] != e["digest"]:
                p.history.pop()
            back = p.history.pop() if p.history else {}
            p.digest, p.since, p.canary, p.preview = e["digest"], e["time"], None, None
            p.slot = back.get("slot", p.slot)
        p.entry = e["hash"]
    return state


def _promote(p: Pointer, e: dict[str, Any]) -> None:
    """A promotion; in blue-green, of the version in the preview slot: the switch to that slot."""
    to_slot = p.preview["slot"] if p.preview is not None and p.preview["digest"] == e["digest"] else None
    if p.digest and p.digest != e["digest"]:
        before = {"digest": p.digest, "since": p.since, "until": e["time"]}
        p.history.append({**before, "slot": p.slot} if to_slot else before)
    p.slot = to_slot or p.slot
    p.digest, p.since, p.canary, p.preview = e["digest"], e["time"], None, None
