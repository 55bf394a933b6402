"""Waivers: a signed, expiring exception to one failing check of one model version, with a reason, made by
someone who holds a role the policy lets waive that gate, and never by the change's author. `evaluate` applies
the valid ones; any other is ignored, and the record, the report and the terminal say why. The policy itself is
not edited, so its digest (and every other decision under it) stays as it was."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_gates.digest import sha256_file
from mlops_gates.errors import GateError, Refused
from mlops_gates.gates.base import RANK, GateResult, Status
from mlops_gates.policy import Policy, WaiverRule, Waivers
from mlops_gates.report.escape import one_line

PREDICATE = "https://mlops-gates.dev/waiver/v1"
FAILING = (Status.FAIL, Status.INCONCLUSIVE, Status.WAIVED)  # WAIVED: judged again from a record
SKEW = dt.timedelta(minutes=5)
MAX_BYTES = 1 << 20  # a signed waiver is a few KB
NOT_A_FILE = "a regular file of at most 1 MiB"  # clocks of the signer's and the evaluator's machines may differ this much


@dataclass(frozen=True)
class Check:
    """One check of an evaluation: a metric in a scope of a gate, or (a gate with no failing metric) the gate."""

    gate: str
    metric: str | None = None
    scope: str | None = None

    @property
    def label(self) -> str:
        return "/".join(x for x in (self.gate, self.metric, self.scope) if x is not None)

    def to_json(self) -> dict[str, Any]:
        return {"gate": self.gate, "metric": self.metric, "scope": self.scope}


def failing(results: list[GateResult]) -> list[Check]:
    """The checks a waiver may name: each failing or inconclusive metric; a failing gate with none, itself."""
    out = []
    for g in results:
        bad = [Check(g.name, m.metric, m.scope) for m in g.metrics if m.status in FAILING]
        out += bad or ([Check(g.name)] if g.status in FAILING else [])
    return out


def pick(checks: list[Check], text: str, where: str) -> Check:
    """The one failing check `text` names: GATE, GATE/METRIC or GATE/METRIC/SCOPE, as long as it is unique."""
    found = [c for c in checks if c.label == text] or [c for c in checks if c.label.startswith(text + "/")]
    if len(found) == 1:
        return found[0]
    listed = "; ".join(c.label for c in checks) or "none: nothing failed"
    what = "names no failing check" if not found else f"names {len(found)} failing checks"
    raise GateError(f"--check {text!r} {what}", where=where, hint=f"name one of: {listed}")


def config(pol: Policy) -> Waivers:
    if pol.waivers is None:
        raise GateError(
            "the policy has no waivers section",
            where=str(pol.path),
            hint="add waivers: (signers, allow) and roles: (see docs/enterprise.md)",
        )
    return pol.waivers


def role_for(
    pol: Policy, approver: str, gate: str, env: dict[str, str] | None = None
) -> tuple[WaiverRule, str]:
    """The rule under which `approver` may waive the gate's checks, with why; refuses naming the roles it takes."""
    from mlops_gates.platforms.membership import allowed

    rules = [r for r in config(pol).allow if "*" in r.gates or gate in r.gates]
    if not rules:
        raise Refused(f"no role may waive the checks of the gate {gate!r} under this policy")
    whys = []
    for rule in rules:
        ok, why = allowed(approver, rule.role.members, env, called=f"those holding {rule.role.name}")
        if ok:
            return rule, why
        whys.append(why)
    names = " or ".join(r.role.name for r in rules)
    raise Refused(
        f"{approver} may not waive {gate}'s checks: that takes the role {names} ({'; '.join(whys)})",
        hint=f"ask someone who holds {names}",
    )


def not_author(approver: str, author: str | None) -> None:
    if author is None:
        raise Refused(
            "who wrote the change is known only in CI, and a waiver's approver must not be its author",
            hint="evaluate in the pull request's pipeline",
        )
    if approver.lower() == author.lower():
        raise Refused(
            f"{approver} wrote the change, and may not waive its checks", hint="ask another approver"
        )


def statement(
    check: Check, model: str, reason: str, approver: str, role: str, now: dt.datetime, expires: dt.datetime
) -> dict[str, Any]:
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "model", "digest": {"sha256": model.removeprefix("sha256:")}}],
        "predicateType": PREDICATE,
        "predicate": {
            "check": check.to_json(),
            "reason": reason,
            "approver": approver,
            "role": role,
            "created": _stamp(now),
            "expires": _stamp(expires),
        },
    }


def create(
    pol: Policy,
    record: dict[str, Any],
    where: str,
    check_text: str,
    *,
    reason: str,
    ttl: float,
    approver: str,
    signer: Any,
    out: Path,
    now: dt.datetime,
) -> dict[str, Any]:
    """Sign a waiver of one failing check of the record's candidate into `out`; every rule is checked first."""
    from mlops_gates.signing.statements import PAYLOAD_TYPE, canonical

    model = ((record["inputs"].get("models") or {}).get("candidate") or {}).get("digest")
    if model is None:
        raise GateError(
            "a waiver is about one model version, and this decision names no candidate model",
            where=where,
            hint="evaluate with the candidate model (models.candidate, or --model candidate=DIR)",
        )
    check = pick(failing([GateResult.from_json(g) for g in record["gates"]]), check_text, where)
    if not reason.strip():
        raise GateError("a waiver needs a reason", hint="--reason 'why this exception is acceptable'")
    rule, _ = role_for(pol, approver, check.gate)
    not_author(approver, (record.get("ci") or {}).get("author"))
    if not 0 < ttl <= rule.max_age:
        raise GateError(
            f"a waiver by {rule.role.name} runs at most {rule.max_age / 86400:g} days",
            hint="a shorter --expires (the policy's waivers.allow[].max_age)",
        )
    st = statement(
        check, model, reason.strip(), approver, rule.role.name, now, now + dt.timedelta(seconds=ttl)
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(signer.sign_bundle(canonical(st), PAYLOAD_TYPE), indent=2) + "\n")
    return st


@dataclass(frozen=True)
class Waiver:
    file: Path
    digest: str
    check: Check
    reason: str
    approver: str
    role: str
    expires: str


def read(path: Path, pol: Policy, model: str | None, author: str | None, now: dt.datetime) -> Waiver:
    """A waiver that holds for this model now, or Refused saying why it does not."""
    from mlops_gates.signing.verify import verify_statement

    waivers = config(pol)
    st, fails = None, []
    for s in waivers.signers:
        try:
            st = verify_statement(path, s)
            break
        except GateError as exc:
            fails.append(exc.message)
    if st is None:
        raise Refused("not signed by a waiver signer the policy trusts: " + "; ".join(fails))
    p = _shaped(st)
    if model is None:
        raise Refused("this evaluation names no candidate model version, and a waiver is about one")
    if {"sha256": model.removeprefix("sha256:")} not in [s.get("digest") for s in st["subject"]]:
        subject = st["subject"][0]["digest"]["sha256"] if st["subject"] else "nothing"
        raise Refused(f"about another model version (sha256:{subject}), not the candidate {model}")
    try:
        created, expires = _time(p["created"]), _time(p["expires"])
    except ValueError:
        raise Refused("not a waiver of the expected shape (created, expires: not dates)") from None
    if now >= expires:
        raise Refused(f"expired at {p['expires']}")
    if created > now + SKEW:
        raise Refused(f"made in the future ({p['created']})")
    check = Check(**p["check"])
    rules = [
        r for r in waivers.allow if r.role.name == p["role"] and ("*" in r.gates or check.gate in r.gates)
    ]
    if not rules:
        raise Refused(f"the role {p['role']} may not waive the checks of {check.gate!r} under this policy")
    if (expires - created).total_seconds() > max(r.max_age for r in rules):
        raise Refused(
            f"runs longer than the policy lets {p['role']} waive ({p['created']} to {p['expires']})"
        )
    not_author(p["approver"], author)
    from mlops_gates.platforms.membership import allowed

    ok, why = allowed(p["approver"], rules[0].role.members, called=f"those holding {p['role']}")
    if not ok:
        raise Refused(f"{p['approver']} does not hold the role {p['role']}: {why}")
    return Waiver(path, sha256_file(path), check, p["reason"], p["approver"], p["role"], p["expires"])


def _shaped(st: dict[str, Any]) -> dict[str, Any]:
    import jsonschema

    from mlops_gates.schemas import schema_file

    if st.get("predicateType") != PREDICATE:
        raise Refused(f"not a waiver ({str(st.get('predicateType'))[:80]!r})")
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema_file("waiver.v1.schema.json")).iter_errors(st)
    )
    if error is not None:
        where = "/".join(map(str, error.absolute_path)) or "the statement"
        raise Refused(f"not a waiver of the expected shape ({where}: {error.message[:120]})")
    return dict(st["predicate"])


def apply(
    pol: Policy,
    results: list[GateResult],
    model: str | None,
    author: str | None,
    now: dt.datetime,
    files: list[Path] | None = None,
) -> tuple[list[GateResult], dict[str, Any] | None]:
    """The results with each valid waiver's check marked WAIVED, and what was applied and ignored (for the
    record); None when the policy has no waivers. `files`: these waivers, not the policy's folder's."""
    if pol.waivers is None:
        return results, None
    if files is None:
        files = sorted(pol.waivers.dir.glob("*.json")) if pol.waivers.dir.is_dir() else []
    applied: list[dict[str, Any]] = []
    ignored: list[dict[str, Any]] = []
    open_checks = set(failing(results))  # matched field by field: a label could read two ways
    for path in files:
        try:
            if not path.is_file() or path.stat().st_size > MAX_BYTES:  # a device, a folder, a huge file
                ignored.append(
                    {"file": path.name, "digest": None, "why": f"not a waiver file ({NOT_A_FILE})"}
                )
                continue
            w = read(path, pol, model, author, now)
            if w.check not in open_checks:
                why = "already waived" if any(a["check"] == w.check.to_json() for a in applied) else None
                raise Refused(why or f"this evaluation has no failing check {w.check.label}")
        except Refused as exc:
            ignored.append(
                {"file": path.name, "digest": sha256_file(path), "why": one_line(exc.message)[:300]}
            )
            continue
        open_checks.discard(w.check)
        results = [_waive(g, w) if g.name == w.check.gate else g for g in results]
        applied.append(
            {
                "file": path.name,
                "digest": w.digest,
                "check": w.check.to_json(),
                "reason": one_line(w.reason)[:500],
                "approver": one_line(w.approver),
                "role": w.role,
                "expires": w.expires,
            }
        )
    return results, {"dir": str(pol.waivers.dir), "applied": applied, "ignored": ignored}


def _waive(g: GateResult, w: Waiver) -> GateResult:
    note = f"waived by {one_line(w.approver)} ({w.role}) until {w.expires}: {one_line(w.reason)[:200]}"
    if w.check.metric is None:
        return dataclasses.replace(g, status=Status.WAIVED, reason=f"{note} (was: {g.reason})")
    metrics = tuple(
        dataclasses.replace(m, status=Status.WAIVED, note=note)
        if (m.metric, m.scope) == (w.check.metric, w.check.scope)
        else m
        for m in g.metrics
    )
    worst = max((RANK[m.status] for m in g.metrics), default=0)
    if RANK[g.status] != worst:  # the gate failed for more than its metrics: it stays as it was
        return dataclasses.replace(g, metrics=metrics)
    rest = max((m.status for m in metrics), key=lambda s: RANK[s])
    status = rest if RANK[rest] > RANK[Status.WAIVED] else Status.WAIVED
    reason = f"{w.check.label} {note}" if status == Status.WAIVED else g.reason
    return dataclasses.replace(g, metrics=metrics, status=status, reason=reason)


def _stamp(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
