"""The audit log for a SIEM, and how long the registry must keep what it holds.

Export: one Elastic Common Schema (ECS 9.x) document per entry, JSON Lines, from a given entry on. Each carries
the chain proof: `event.original` is the entry exactly as logged, `event.hash` its hash and
`mlops_gates.chain.prev` the hash before it, so the receiver can recompute every hash and check that this
export continues the one it already holds (`--after HASH`).

Retention: `promotion.retention.versions` keeps a version's files for that long after it last served (or was
registered); `audit verify` reports a version removed before then, and a version the log registered but the
store no longer holds is never passed over in silence."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

from mlops_gates.errors import GateError, Refused
from mlops_gates.promotion.audit import entry_hash, parse_time, replay, stamp
from mlops_gates.promotion.registry import Registry

ECS_VERSION = "9.4.0"


def ecs(entry: dict[str, Any]) -> dict[str, Any]:
    """One audit entry as an ECS document; what ECS has no field for goes under `mlops_gates`."""
    done = entry["outcome"] == "done"
    hashes = [entry[k] for k in ("digest", "replaced", "decision", "policy") if entry.get(k)]
    doc: dict[str, Any] = {
        "@timestamp": entry["time"],
        "ecs": {"version": ECS_VERSION},
        "message": f"{entry['action']} {entry['outcome']}: {entry['model']} {entry['digest'] or ''}".strip(),
        "event": {
            "kind": "event",
            "category": ["configuration"],
            "type": ["creation"] if entry["action"] == "register" else ["change"],
            "action": f"model-{entry['action']}",
            "outcome": "success" if done else "failure",
            "reason": entry["reason"],
            "provider": "mlops-gates",
            "dataset": "mlops_gates.audit",
            "sequence": entry["seq"],
            "hash": entry["hash"],
            "original": json.dumps(entry, sort_keys=True, ensure_ascii=False),
        },
        "related": {"hash": hashes},
        "mlops_gates": {
            "model": entry["model"],
            **{
                k: entry.get(k) for k in ("digest", "replaced", "from", "to", "traffic", "decision", "policy")
            },
            "provenance": entry.get("provenance"),
            "chain": {"seq": entry["seq"], "prev": entry["prev"], "hash": entry["hash"]},
        },
    }
    if entry["actor"]:
        doc["user"] = {"name": entry["actor"]}
        doc["related"]["user"] = [entry["actor"]]
    if entry["ci_run_url"]:
        doc["url"] = {"full": entry["ci_run_url"]}
    return doc


def export(
    entries: list[dict[str, Any]], start: int = 1, after: str | None = None
) -> Iterator[dict[str, Any]]:
    """ECS documents for entries `start` on. With `after`, the entry before `start` must have that hash: the
    export continues exactly the copy the receiver holds."""
    if start < 1 or start > len(entries) + 1:
        raise GateError(
            f"the log has entries 1 to {len(entries)}; there is no entry {start} to start from",
            hint="start from 1, or from one after the last entry already exported",
        )
    if after is not None:
        before = entries[start - 2]["hash"] if start > 1 else None
        if before != after:
            raise Refused(
                f"entry {start - 1} of the log is not the one the receiver holds (its hash is {before}, not {after})",
                hint="the log and the exported copy have diverged: compare them from the start (audit verify)",
            )
    for e in entries[start - 1 :]:
        yield ecs(e)


def check_export(docs: list[dict[str, Any]], after: str | None) -> list[str]:
    """What a receiver checks of an export: each entry's hash recomputed from `event.original`, and each
    linked to the one before. Returns the problems (none for an intact export)."""
    problems = []
    prev = after
    for d in docs:
        entry = json.loads(d["event"]["original"])
        if entry_hash(entry) != entry["hash"] or entry["hash"] != d["event"]["hash"]:
            problems.append(f"entry {entry['seq']}: its hash does not hold")
        if prev is not None and entry["prev"] != prev:
            problems.append(f"entry {entry['seq']}: does not follow the entry before it")
        prev = entry["hash"]
    return problems


def retention(
    reg: Registry, entries: list[dict[str, Any]], keep: float | None, now: dt.datetime
) -> tuple[list[str], list[str]]:
    """Registered versions the store no longer holds: (problems, notes). Removed before `keep` seconds past
    the last time it served (or its registration; a version that serves now cannot be removed) is a problem;
    without a retention period any removal is; after the period it is a note."""
    registered = {
        (e["model"], e["digest"]): e["time"]
        for e in entries
        if e["action"] == "register" and e["outcome"] == "done"
    }
    held = {(m, d) for m in reg.store.models({m for m, _ in registered}) for d in reg.store.versions(m)}
    last_served = _last_served(entries, now)
    problems, notes = [], []
    for (model, digest), since in sorted(registered.items()):
        if (model, digest) in held:
            continue
        if keep is None:
            problems.append(f"{model} {digest}: registered at {since}, no longer in the store")
            continue
        until = max(parse_time(since), last_served.get((model, digest), parse_time(since))) + dt.timedelta(
            seconds=keep
        )
        if now < until:
            problems.append(f"{model} {digest}: removed before its retention ended ({stamp(until)})")
        else:
            notes.append(f"{model} {digest}: removed after its retention ended ({stamp(until)})")
    return problems, notes


def _last_served(entries: list[dict[str, Any]], now: dt.datetime) -> dict[tuple[str, str], dt.datetime]:
    """When each version last served anywhere: when an entry displaced it, or now for what serves now."""
    out: dict[tuple[str, str], dt.datetime] = {}
    for e in entries:
        if e["outcome"] == "done" and e.get("replaced"):
            key = (e["model"], e["replaced"])
            out[key] = max(out.get(key, parse_time(e["time"])), parse_time(e["time"]))
    for (model, _), p in replay(entries).items():
        for d in (p.digest, (p.canary or {}).get("digest"), (p.preview or {}).get("digest")):
            if d:
                out[(model, d)] = now
    return out
