"""The policy's governance: named roles, who may promote and roll back by role, and who may waive which gates'
checks; and residency's rule on signers. Checked here for what a schema cannot say (a role named but not
defined, a public-good signer under private signing)."""

from __future__ import annotations

from typing import Any

from mlops_gates.policy.model import Problem, Role, Signer
from mlops_gates.policy.schema import where

ACTIONS = ("promote", "rollback")
DEFAULT_WAIVER_AGE = "14d"


def roles_of(data: dict[str, Any]) -> dict[str, Role]:
    return {name: Role(name, tuple(members)) for name, members in data.get("roles", {}).items()}


def env_roles(e: dict[str, Any], roles: dict[str, Role]) -> dict[str, tuple[Role, ...]]:
    """Action -> the roles that may take it; rollback defaults to those that may promote."""
    out = {a: tuple(roles[r] for r in e[a]) for a in ACTIONS if a in e}
    if "promote" in out and "rollback" not in out:
        out["rollback"] = out["promote"]
    return out


def signer(s: dict[str, Any], path: Any) -> Signer:
    return Signer(
        key=path(s.get("key")),
        identity=s.get("identity"),
        identity_regexp=s.get("identity_regexp"),
        issuer=s.get("issuer"),
        trust_root=path(s.get("trust_root")),
        repository=s.get("repository"),
        ref=s.get("ref"),
        ca=path(s.get("ca")),
    )


def problems(data: dict[str, Any], lines: dict[str, int]) -> list[Problem]:
    """Every role named is defined; an environment says who may act one way (approvers, or roles)."""
    defined = set(data.get("roles", {}))
    hint = f"define it under roles: (defined: {', '.join(sorted(defined)) or 'none'})"
    out: list[Problem] = []
    for i, e in enumerate(data.get("promotion", {}).get("environments", [])):
        at = ["promotion", "environments", i]
        if "approvers" in e and any(a in e for a in ACTIONS):
            out.append(
                (
                    where([*at, "approvers"], lines),
                    "approvers and roles (promote, rollback) both given",
                    "use one",
                )
            )
        for a in ACTIONS:
            for j, r in enumerate(e.get(a, [])):
                if r not in defined:
                    out.append((where([*at, a, j], lines), f"no role named {r!r}", hint))
    for i, a in enumerate(data.get("waivers", {}).get("allow", [])):
        if a["role"] not in defined:
            out.append((where(["waivers", "allow", i, "role"], lines), f"no role named {a['role']!r}", hint))
    gate_names = {g.get("name", g["type"]) for g in data["gates"]}
    for i, a in enumerate(data.get("waivers", {}).get("allow", [])):
        for j, g in enumerate(a["gates"]):
            if g != "*" and g not in gate_names:
                out.append(
                    (
                        where(["waivers", "allow", i, "gates", j], lines),
                        f"no gate named {g!r}",
                        f'the policy\'s gates are: {", ".join(sorted(gate_names))}; "*" for any',
                    )
                )
    return out + _private_signing(data, lines)


def _private_signing(data: dict[str, Any], lines: dict[str, int]) -> list[Problem]:
    """Under residency.signing: private, no signer may be one that public-good Sigstore vouches for."""
    if data.get("residency", {}).get("signing") != "private":
        return []
    places = [
        (["promotion", "environments", i, "signers", j], s)
        for i, e in enumerate(data.get("promotion", {}).get("environments", []))
        for j, s in enumerate(e["signers"])
    ] + [(["waivers", "signers", j], s) for j, s in enumerate(data.get("waivers", {}).get("signers", []))]
    return [
        (
            where(at, lines),
            "residency.signing is private, and this signer is vouched for by public-good Sigstore",
            "give it trust_root: (your Sigstore's trusted root), or use a key or a private ca",
        )
        for at, s in places
        if not (s.get("key") or s.get("ca") or s.get("trust_root"))
    ]
