"""Promote, roll back and check: every rule is checked before anything is written, every outcome (refusals
too) is one audit entry, and the write happens under the lock only if nobody wrote in between."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from mlops_gates.digest import sha256_file
from mlops_gates.errors import GateError, Refused, Tampered
from mlops_gates.policy import Policy
from mlops_gates.promotion.audit import AuditBroken, Pointer, idle, now_utc, replay, stamp
from mlops_gates.promotion.registry import Registry, Version, check_digest, check_name
from mlops_gates.promotion.rules import authorise, check, promotion_of, verify_version


@dataclass
class Outcome:
    entry: dict[str, Any] | None  # None: nothing to do (already so)
    pointer: Pointer
    descriptor: dict[str, Any]
    checks: list[str] = field(default_factory=list)


def state(reg: Registry) -> tuple[list[dict[str, Any]], dict[tuple[str, str], Pointer]]:
    """The log, checked, and the state it implies; the stored pointers must agree with it."""
    try:
        entries = reg.ledger.entries()
    except AuditBroken as exc:
        raise Tampered(
            f"the audit log is broken at {exc}",
            where=str(reg.ledger.log),
            hint="restore the registry from version control; run `mlops-gates audit verify` for the details",
        ) from None
    derived = replay(entries)
    stored = reg.store.pointers(reg.store.models({e["model"] for e in entries}))
    for key in sorted(set(derived) | set(stored)):
        want = derived[key].as_json(*key) if key in derived else None
        if stored.get(key) != want:
            got = (stored.get(key) or {}).get("digest")
            raise Tampered(
                f"the {key[1]} pointer of {key[0]} does not match the audit log "
                f"(it names {got}, the log {want and want['digest']})",
                where=reg.location,
                hint="a pointer was edited by hand: restore it from version control, or promote again",
            )
    return entries, derived


def _fields(action: str, model: str, digest: str | None, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "time": None,
        "action": action,
        "outcome": "done",
        "model": model,
        "digest": digest,
        "replaced": None,
        "from": None,
        "to": None,
        "traffic": None,
        "decision": None,
        "policy": None,
        "actor": None,
        "ci_run_url": None,
        "reason": "",
    }
    base.update(kw)
    return base


def _commit(
    reg: Registry, read: list[dict[str, Any]], fields: dict[str, Any], key: tuple[str, str] | None
) -> tuple[dict[str, Any], Pointer | None]:
    """Append (and move the pointer) only if the log is still as it was read; else refuse: retry."""
    with reg.ledger.locked():
        entries, _ = state(reg)
        if len(entries) != len(read) or (entries and entries[-1]["hash"] != read[-1]["hash"]):
            why = "another promotion changed the registry while this one was being checked"
            reg.ledger.append({**fields, "outcome": "refused", "reason": why}, entries)
            raise Refused(why, where=reg.location, hint="retry: the checks will run on the new state")
        entry = reg.ledger.append(fields, entries)
        pointer = None
        if key is not None and fields["outcome"] == "done":
            pointer = replay([*entries, entry])[key]
            reg.store.set_pointer(*key, pointer)
        return entry, pointer


def _refuse(reg: Registry, fields: dict[str, Any], exc: Refused) -> None:
    with reg.ledger.locked():
        entries = reg.ledger.entries()
        reg.ledger.append({**fields, "outcome": "refused", "reason": exc.message}, entries)


def descriptor(reg: Registry, model: str, env: str, p: Pointer, blue_green: bool = False) -> dict[str, Any]:
    """What a deploy job needs: which digest serves which share of traffic, and where its files are."""
    split = []
    canary = p.canary["traffic"] if p.canary else 0
    if p.digest:
        split.append(
            {"digest": p.digest, "percent": 100 - canary, "uri": reg.store.version(model, p.digest).uri}
        )
    if p.canary:
        v = reg.store.version(model, p.canary["digest"])
        split.append({"digest": v.digest, "percent": canary, "uri": v.uri, "canary": True})
    out = {
        "model": model,
        "environment": env,
        "registry": reg.location,
        "digest": p.digest,
        "uri": split[0]["uri"] if p.digest else None,
        "traffic": split,
        "audit_entry": p.entry,
    }
    if blue_green:
        out["blue_green"] = _slots(reg, model, p)
    return out


def _slots(reg: Registry, model: str, p: Pointer) -> dict[str, Any]:
    """Which slot serves, what the idle slot holds (a preview, or the previous version: the instant way
    back), for a deploy job that keeps both slots running."""
    idle_holds = p.preview or next((h for h in reversed(p.history) if "slot" in h), None)
    slots: dict[str, Any] = {"serving": p.slot}
    if p.digest:
        slots[p.slot] = {"digest": p.digest, "uri": reg.store.version(model, p.digest).uri, "traffic": 100}
    if idle_holds:
        v = reg.store.version(model, idle_holds["digest"])
        slots[idle(p.slot)] = {
            "digest": v.digest,
            "uri": v.uri,
            "traffic": 0,
            "role": "preview" if p.preview else "previous",
        }
    return slots


def promote(
    reg: Registry,
    pol: Policy,
    model: str,
    digest: str,
    to: str,
    *,
    actor: str,
    traffic: int | None = None,
    preview: bool = False,
    ci_run_url: str | None = None,
    now: dt.datetime | None = None,
) -> Outcome:
    """Into an environment: all at once, as a canary step (`traffic`), or into the idle slot (`preview`)."""
    now = now or now_utc()
    check_name(model)
    check_digest(digest)
    if preview and traffic is not None:
        raise GateError("a preview takes no traffic", hint="drop --traffic or --preview")
    promo = promotion_of(pol)
    idx, env = promo.env(to)
    entries, pointers = state(reg)
    here = pointers.get((model, to), Pointer())
    fields = _fields(
        "canary" if traffic is not None else "preview" if preview else "promote",
        model,
        digest,
        time=stamp(now),
        to=to,
        traffic=traffic,
        actor=actor,
        ci_run_url=ci_run_url,
        policy=pol.digest,
        replaced=here.digest,
        **{"from": promo.environments[idx - 1].name if idx else None},
    )
    if traffic is None and here.digest == digest and here.canary is None:
        return Outcome(
            None, here, descriptor(reg, model, to, here, env.blue_green), [f"{to} already serves {digest}"]
        )
    if preview and here.preview and here.preview["digest"] == digest:
        return Outcome(
            None, here, descriptor(reg, model, to, here, env.blue_green), [f"{to} previews {digest} already"]
        )
    try:
        version, predicate, checks = check(
            reg, pol, pointers, model, digest, to, actor, traffic, now, preview
        )
    except Refused as exc:
        _refuse(reg, fields, exc)
        raise
    fields["decision"] = sha256_file(version.decision) if version.decision else None
    linked = (predicate["models"]["candidate"].get("provenance") or {}).get("digest")
    if linked:
        fields["provenance"] = linked
    fields["reason"] = "; ".join(checks)
    entry, pointer = _commit(reg, entries, fields, (model, to))
    assert pointer is not None
    return Outcome(entry, pointer, descriptor(reg, model, to, pointer, env.blue_green), checks)


def rollback(
    reg: Registry,
    pol: Policy,
    model: str,
    env_name: str,
    *,
    actor: str,
    ci_run_url: str | None = None,
    now: dt.datetime | None = None,
) -> Outcome:
    """One step back: a canary is withdrawn; otherwise the previous stable version that still verifies."""
    now = now or now_utc()
    check_name(model)
    _, env = promotion_of(pol).env(env_name)
    entries, pointers = state(reg)
    here = pointers.get((model, env_name))
    fields = _fields(
        "rollback",
        model,
        None,
        time=stamp(now),
        to=env_name,
        actor=actor,
        ci_run_url=ci_run_url,
        policy=pol.digest,
    )
    try:
        if here is None or (here.digest is None and here.canary is None):
            raise Refused(f"{env_name} serves no version of {model}")
        authorise(actor, env, "rollback")
        if here.canary:
            fields.update(digest=here.digest, replaced=here.canary["digest"], reason="canary withdrawn")
        elif here.preview:
            fields.update(digest=here.digest, replaced=here.preview["digest"], reason="preview withdrawn")
        else:
            skipped = []
            for h in reversed(here.history):
                try:
                    verify_version(reg.store.version(model, h["digest"]), env)
                except GateError as exc:
                    skipped.append(f"{h['digest']}: {exc.message}")
                    continue
                fields.update(
                    digest=h["digest"], replaced=here.digest, reason=f"back to the version of {h['since']}"
                )
                break
            else:
                raise Refused(
                    f"{env_name} has no earlier version that still verifies"
                    + (": " + "; ".join(skipped) if skipped else "")
                )
    except Refused as exc:
        _refuse(reg, fields, exc)
        raise
    entry, pointer = _commit(reg, entries, fields, (model, env_name))
    assert pointer is not None
    return Outcome(
        entry, pointer, descriptor(reg, model, env_name, pointer, env.blue_green), [fields["reason"]]
    )


def register(
    reg: Registry,
    model: str,
    files: Any,
    signature: Any,
    decision: Any,
    *,
    actor: str | None,
    now: dt.datetime | None = None,
) -> tuple[Version, bool]:
    check_name(model)
    with reg.ledger.locked():
        entries, _ = state(reg)
        version, new = reg.store.add(model, files, signature, decision)
        if new:
            reg.ledger.append(
                _fields(
                    "register",
                    model,
                    version.digest,
                    time=stamp(now or now_utc()),
                    actor=actor,
                    decision=sha256_file(decision) if decision else None,
                    reason="signed" if signature else "unsigned",
                ),
                entries,
            )
    return version, new


def verify_registry(reg: Registry) -> tuple[int, list[str]]:
    """Everything `audit verify` checks: the chain, its head, pointers against the log, every version's files."""
    problems: list[str] = []
    try:
        entries = reg.ledger.entries()
    except AuditBroken as exc:
        return 0, [f"audit log: {exc}"]
    try:
        state(reg)
    except Tampered as exc:
        problems.append(exc.message)
    logged = {
        (e["model"], e["digest"]) for e in entries if e["action"] == "register" and e["outcome"] == "done"
    }
    for model in sorted(reg.store.models({m for m, _ in logged})):
        for digest in reg.store.versions(model):
            try:
                reg.store.version(model, digest)
            except GateError as exc:
                problems.append(f"{model} {digest}: {exc.message}")
            if (model, digest) not in logged:
                problems.append(f"{model} {digest}: a version the audit log never registered")
    return len(entries), problems
