"""Promote, roll back and check: every rule is checked before anything is written, every outcome (refusals
too) is one audit entry, and the write happens under the lock only if nobody wrote in between."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from mlops_gates.digest import sha256_file
from mlops_gates.errors import GateError
from mlops_gates.policy import Environment, Policy, Promotion
from mlops_gates.promotion.audit import AuditBroken, Pointer, now_utc, parse_time, replay, stamp
from mlops_gates.promotion.registry import (
    Refused,
    Registry,
    Tampered,
    Version,
    check_digest,
    check_name,
)


@dataclass
class Outcome:
    entry: dict[str, Any] | None  # None: nothing to do (already so)
    pointer: Pointer
    descriptor: dict[str, Any]
    checks: list[str] = field(default_factory=list)


def _promotion(pol: Policy) -> Promotion:
    if pol.promotion is None:
        raise GateError(
            "the policy has no promotion section",
            where=str(pol.path),
            hint="add promotion.environments (see the README, Promotion)",
        )
    return pol.promotion


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


def _authorise(actor: str, env: Environment, what: str) -> str:
    """Why the actor may act on the environment; refuses otherwise."""
    if env.approvers is None:
        return f"{env.name} lists no approvers"
    from mlops_gates.promotion.approvers import allowed

    ok, why = allowed(actor, env.approvers)
    if not ok:
        raise Refused(
            f"{actor} may not {what} {env.name}: {why}", hint=f"ask one of: {', '.join(env.approvers)}"
        )
    return why


def verify_version(version: Version, env: Environment) -> tuple[dict[str, Any], str]:
    """The signature and the decision attestation, by any one of the environment's trusted signers."""
    from mlops_gates.signing.verify import verify

    if version.signature is None:
        raise Refused(
            f"{version.model} {version.digest} is not signed", hint="sign it with `mlops-gates sign`"
        )
    if version.decision is None:
        raise Refused(
            f"{version.model} {version.digest} has no decision attestation",
            hint="sign with --decision decision.json so the gate's verdict travels with the model",
        )
    failures = []
    for signer in env.signers:
        try:
            v = verify(version.files, version.signature, signer, decision=version.decision)
        except GateError as exc:
            failures.append(exc.message)
            continue
        assert v.decision is not None
        return v.decision["predicate"], str(signer.key or signer.identity or signer.identity_regexp)
    raise Refused(
        f"no signer that {env.name} trusts signed {version.digest}: " + "; ".join(failures),
        hint=f"sign with an identity or key listed under promotion.environments[{env.name}].signers",
    )


def _check(
    reg: Registry,
    pol: Policy,
    pointers: dict[tuple[str, str], Pointer],
    model: str,
    digest: str,
    to: str,
    actor: str,
    traffic: int | None,
    now: dt.datetime,
) -> tuple[Version, dict[str, Any], list[str]]:
    promo = _promotion(pol)
    idx, env = promo.env(to)
    checks: list[str] = []
    who = _authorise(actor, env, "promote into")
    version = reg.store.version(model, digest)
    predicate, signer = verify_version(version, env)
    checks.append(f"signature and decision attestation by {signer}")
    checks.append(who)
    if predicate["decision"] != "PROMOTE":
        raise Refused(
            f"the gate decided {predicate['decision']}, not PROMOTE: {'; '.join(predicate['reasons'])}"
        )
    if predicate["policy"]["digest"] != pol.digest:
        raise Refused(
            f"the decision was made under policy {predicate['policy']['digest']}, not the current {pol.digest}",
            hint="run the gate again under the current policy",
        )
    age = (now - parse_time(predicate["decided_at"])).total_seconds()
    if age > promo.max_decision_age:
        raise Refused(
            f"the decision is {age / 86400:.1f} days old; the policy accepts {promo.max_decision_age / 86400:g}",
            hint="run the gate again: evidence goes stale",
        )
    checks.append(f"decision PROMOTE under the current policy, {age / 3600:.1f} h old")
    if idx > 0:
        prev = promo.environments[idx - 1]
        p = pointers.get((model, prev.name))
        if p is None or p.digest != digest:
            raise Refused(
                f"{digest} is not what {prev.name} serves: environments cannot be skipped",
                hint=f"promote it to {prev.name} first",
            )
        held = (now - parse_time(p.since or "")).total_seconds()
        if held < env.min_time_in_previous:
            raise Refused(
                f"{digest} has been in {prev.name} for {held / 3600:.2f} h; {to} needs "
                f"{env.min_time_in_previous / 3600:g} h",
                hint="promote again later",
            )
        checks.append(f"in {prev.name} since {p.since}")
    if env.distinct_from_author:
        author = (predicate.get("ci") or {}).get("author")
        if not author:
            raise Refused(
                f"{to} needs a promoter other than the change's author, and the decision names no author",
                hint="run the gate in CI, where the author is recorded",
            )
        if author.lower() == actor.lower():
            raise Refused(f"{actor} wrote this change and may not also promote it into {to}")
        checks.append(f"promoter {actor} is not the author {author}")
    here = pointers.get((model, to), Pointer())
    if traffic is not None:
        if traffic not in env.canary:
            steps = ", ".join(map(str, env.canary)) or "none"
            raise Refused(f"{traffic}% is not a canary step of {to} (steps: {steps})")
        if here.digest is None:
            raise Refused(f"{to} serves nothing yet to share traffic with", hint="promote without --traffic")
        if here.canary and here.canary["digest"] != digest:
            raise Refused(
                f"a canary of {here.canary['digest']} is in progress in {to}",
                hint="complete it (promote without --traffic) or roll it back first",
            )
        if here.canary and traffic <= here.canary["traffic"]:
            raise Refused(f"the canary is at {here.canary['traffic']}% already; steps only go up")
    elif env.canary and here.digest is not None and not (here.canary and here.canary["digest"] == digest):
        raise Refused(
            f"{to} takes a new version through canary steps first",
            hint=f"promote with --traffic {env.canary[0]}",
        )
    return version, predicate, checks


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


def descriptor(reg: Registry, model: str, env: str, p: Pointer) -> dict[str, Any]:
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
    return {
        "model": model,
        "environment": env,
        "registry": reg.location,
        "digest": p.digest,
        "uri": split[0]["uri"] if p.digest else None,
        "traffic": split,
        "audit_entry": p.entry,
    }


def promote(
    reg: Registry,
    pol: Policy,
    model: str,
    digest: str,
    to: str,
    *,
    actor: str,
    traffic: int | None = None,
    ci_run_url: str | None = None,
    now: dt.datetime | None = None,
) -> Outcome:
    now = now or now_utc()
    check_name(model)
    check_digest(digest)
    promo = _promotion(pol)
    idx, _ = promo.env(to)
    entries, pointers = state(reg)
    here = pointers.get((model, to), Pointer())
    fields = _fields(
        "canary" if traffic is not None else "promote",
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
        return Outcome(None, here, descriptor(reg, model, to, here), [f"{to} already serves {digest}"])
    try:
        version, _, checks = _check(reg, pol, pointers, model, digest, to, actor, traffic, now)
    except Refused as exc:
        _refuse(reg, fields, exc)
        raise
    fields["decision"] = sha256_file(version.decision) if version.decision else None
    fields["reason"] = "; ".join(checks)
    entry, pointer = _commit(reg, entries, fields, (model, to))
    assert pointer is not None
    return Outcome(entry, pointer, descriptor(reg, model, to, pointer), checks)


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
    _, env = _promotion(pol).env(env_name)
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
        _authorise(actor, env, "roll back")
        if here.canary:
            fields.update(digest=here.digest, replaced=here.canary["digest"], reason="canary withdrawn")
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
    return Outcome(entry, pointer, descriptor(reg, model, env_name, pointer), [fields["reason"]])


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
