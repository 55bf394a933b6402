"""The rules a promotion must meet, all checked before anything is written: who may act, whose signature
counts, what the gate decided and under which policy, how old the evidence is, the order of environments, time
spent in the previous one, the author's distance, and canary steps."""

from __future__ import annotations

import datetime as dt
from typing import Any

from mlops_gates.errors import GateError, Refused
from mlops_gates.policy import Environment, Policy, Promotion
from mlops_gates.promotion.audit import Pointer, parse_time
from mlops_gates.promotion.registry import Registry, Version


def promotion_of(pol: Policy) -> Promotion:
    if pol.promotion is None:
        raise GateError(
            "the policy has no promotion section",
            where=str(pol.path),
            hint="add promotion.environments (see docs/promotion.md)",
        )
    return pol.promotion


WHAT = {"promote": "promote into", "rollback": "roll back"}


def authorise(actor: str, env: Environment, action: str) -> str:
    """Why the actor may take the action ("promote", "rollback") on the environment; refuses otherwise, naming
    the role (or the approvers) it takes."""
    from mlops_gates.platforms.membership import allowed

    what = WHAT[action]
    roles = env.roles.get(action)
    if roles:
        whys = []
        for role in roles:
            ok, why = allowed(actor, role.members, called=f"those holding {role.name}")
            if ok:
                return why
            whys.append(why)
        names = " or ".join(r.name for r in roles)
        raise Refused(
            f"{actor} may not {what} {env.name}: that takes the role {names} ({'; '.join(whys)})",
            hint=f"ask someone who holds {names}, or have {actor} given it under roles: in the policy",
        )
    if env.approvers is None:
        return f"{env.name} lists no approvers"
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
        who = signer.key or signer.identity or signer.identity_regexp
        return v.decision["predicate"], str(who) if who else f"a certificate from the CA in {signer.ca}"
    raise Refused(
        f"no signer that {env.name} trusts signed {version.digest}: " + "; ".join(failures),
        hint=f"sign with an identity or key listed under promotion.environments[{env.name}].signers",
    )


def decision_stands(predicate: dict[str, Any], pol: Policy, at: dt.datetime, when: str = "") -> str:
    """The gate's decision may move the model: PROMOTE, under the current policy, and no older at `at` (now for
    a promotion; the promotion's time for a fetch) than the policy accepts."""
    if predicate["decision"] != "PROMOTE":
        raise Refused(
            f"the gate decided {predicate['decision']}, not PROMOTE: {'; '.join(predicate['reasons'])}"
        )
    if predicate["policy"]["digest"] != pol.digest:
        raise Refused(
            f"the decision was made under policy {predicate['policy']['digest']}, not the current {pol.digest}",
            hint="run the gate again under the current policy, and promote the result",
        )
    age = (at - parse_time(predicate["decided_at"])).total_seconds()
    limit = promotion_of(pol).max_decision_age
    if age > limit:
        raise Refused(
            f"the decision was {age / 86400:.1f} days old{when}; the policy accepts {limit / 86400:g}",
            hint="run the gate again: evidence goes stale",
        )
    return f"decision PROMOTE under the current policy, {age / 3600:.1f} h old{when}"


def check(
    reg: Registry,
    pol: Policy,
    pointers: dict[tuple[str, str], Pointer],
    model: str,
    digest: str,
    to: str,
    actor: str,
    traffic: int | None,
    now: dt.datetime,
    preview: bool = False,
) -> tuple[Version, dict[str, Any], list[str]]:
    promo = promotion_of(pol)
    idx, env = promo.env(to)
    checks: list[str] = []
    who = authorise(actor, env, "promote")
    version = reg.store.version(model, digest)
    predicate, signer = verify_version(version, env)
    checks.append(f"signature and decision attestation by {signer}")
    checks.append(who)
    checks.append(decision_stands(predicate, pol, now))
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
    _canary_step(env, here, traffic, digest, to)
    _slot_step(env, here, preview, digest, to)
    return version, predicate, checks


def _slot_step(env: Environment, here: Pointer, preview: bool, digest: str, to: str) -> None:
    """Blue-green: a new version enters the idle slot as a preview, one at a time, before the switch."""
    if preview:
        if not env.blue_green:
            raise Refused(
                f"{to} has no preview slot", hint="set blue_green: true on the environment, or drop --preview"
            )
        if here.digest is None:
            raise Refused(
                f"{to} serves nothing yet: there is no idle slot to preview in",
                hint="promote without --preview",
            )
        if here.preview and here.preview["digest"] != digest:
            raise Refused(
                f"a preview of {here.preview['digest']} is in the idle slot of {to}",
                hint="switch to it (promote without --preview) or roll it back first",
            )
    elif (
        env.blue_green and here.digest is not None and not (here.preview and here.preview["digest"] == digest)
    ):
        raise Refused(
            f"{to} takes a new version through its preview slot first", hint="promote with --preview"
        )


def _canary_step(env: Environment, here: Pointer, traffic: int | None, digest: str, to: str) -> None:
    """A canary moves up through the environment's steps, one version at a time; a new version of an
    environment with steps starts at the first."""
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
