"""Fetch at the door of serving: the version an environment serves, written to the destination only after
every check a promotion made holds again on the copy itself (the audit chain up to the pointer, the files
against the registry, the signature and the decision attestation by a signer the environment trusts, PROMOTE
under the current policy, fresh when it was promoted) and the pointer has not moved meanwhile. Anything else
leaves the destination empty."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_gates.digest import copy_hashing, sha256_file
from mlops_gates.errors import GateError, Refused, Tampered
from mlops_gates.policy import Policy
from mlops_gates.promotion.audit import Pointer, parse_time
from mlops_gates.promotion.promote import state
from mlops_gates.promotion.registry import (
    DECISION,
    SIGNATURE,
    Registry,
    Version,
    check_digest,
    check_name,
)
from mlops_gates.promotion.rules import decision_stands, promotion_of, verify_version

URI = re.compile(r"^mlops-gates://(?P<model>[^/@]+)/(?P<env>[^/@]+?)/?(?:@(?P<digest>[^/@]+))?$")
STAGING = ".mlops-gates-fetch-"  # inside the destination, so the final step is a rename


@dataclass
class Fetched:
    model: str
    environment: str
    digest: str
    role: str  # stable, canary or preview
    dest: Path
    files: int
    checks: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {**self.__dict__, "dest": str(self.dest)}


def parse_uri(uri: str) -> tuple[str, str, str | None]:
    """mlops-gates://MODEL/ENV[@sha256:HEX], as a storage initializer receives it."""
    m = URI.match(uri)
    if m is None:
        raise GateError(
            f"{uri!r} is not a mlops-gates URI",
            hint="write mlops-gates://MODEL/ENVIRONMENT, or mlops-gates://MODEL/ENVIRONMENT@sha256:HEX",
        )
    digest = m["digest"]
    return check_name(m["model"]), m["env"], check_digest(digest) if digest else None


def fetch(
    reg: Registry,
    pol: Policy,
    model: str,
    env_name: str,
    dest: Path,
    *,
    digest: str | None = None,
) -> Fetched:
    """The version `env_name` serves (or `digest`, if it serves it as stable, canary or preview) into `dest`."""
    check_name(model)
    promo = promotion_of(pol)
    _, env = promo.env(env_name)
    staging = _staging(dest)
    try:
        entries, pointers = state(reg)
        role, want = _served(pointers.get((model, env_name)), model, env_name, digest)
        checks = [f"audit log of {len(entries)} entries intact; {env_name} serves {want} ({role})"]
        version = _stage(reg.store.version(model, want), staging)
        checks.append(f"{len(version.digests)} files copied, each matching the registry's digest")
        predicate, signer = verify_version(version, env)
        checks.append(f"signature and decision attestation by {signer}")
        checks.append(_evidence(predicate, pol, _placed(entries, model, env_name, want), version))
        if _still(reg, model, env_name, digest) != (role, want):
            raise Refused(
                f"the {env_name} pointer of {model} moved while fetching",
                hint="retry: the new version is checked from the start",
            )
        checks.append("the pointer did not move while fetching")
        _publish(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Fetched(model, env_name, want, role, dest, len(version.digests), checks)


def _staging(dest: Path) -> Path:
    """A private folder inside an empty destination (a fetch killed midway leaves only its staging, which the
    next one clears)."""
    if dest.exists() and not dest.is_dir():
        raise GateError("the destination is not a folder", where=str(dest), hint="pass an empty folder")
    dest.mkdir(parents=True, exist_ok=True)
    for p in dest.iterdir():
        if p.name.startswith(STAGING) and p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            raise GateError(
                f"the destination is not empty (it holds {p.name})",
                where=str(dest),
                hint="fetch into an empty folder: nothing already there is trusted or overwritten",
            )
    return Path(tempfile.mkdtemp(prefix=STAGING, dir=dest))


def _served(p: Pointer | None, model: str, env: str, digest: str | None) -> tuple[str, str]:
    """Which role the wanted version has in the environment: its stable version unless a digest is named."""
    roles = {}
    if p is not None:
        roles = {
            k: v
            for k, v in (
                ("preview", (p.preview or {}).get("digest")),
                ("canary", (p.canary or {}).get("digest")),
                ("stable", p.digest),
            )
            if v
        }
    if digest is None:
        if "stable" not in roles:
            raise Refused(f"{env} serves no version of {model}", hint="promote a version into it first")
        return "stable", roles["stable"]
    for role, d in roles.items():
        if d == digest:
            return role, d
    raise Refused(f"{env} does not serve {digest} of {model}", hint="fetch a version the environment serves")


def _still(reg: Registry, model: str, env: str, digest: str | None) -> tuple[str, str] | None:
    """What the environment serves now (None: not the wanted version any more)."""
    _, pointers = state(reg)
    try:
        return _served(pointers.get((model, env)), model, env, digest)
    except Refused:
        return None


def _stage(v: Version, staging: Path) -> Version:
    """The registered files and signatures copied into staging, each hashed as written: what is checked next
    is the copy that will be served, not the source it came from."""
    files = staging / "files"
    for rel, want in sorted(v.digests.items()):
        target = files / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if copy_hashing(v.files / rel, target) != want:
            raise Tampered(
                f"{rel} changed while it was being fetched",
                where=str(v.files),
                hint="restore the version from version control; never edit a registered version",
            )
    copies = {}
    for src, name in ((v.signature, SIGNATURE), (v.decision, DECISION)):
        copies[name] = shutil.copyfile(src, staging / name) if src else None
    return Version(v.model, v.digest, files, copies[SIGNATURE], copies[DECISION], v.uri, v.digests)


def _placed(entries: list[dict[str, Any]], model: str, env: str, digest: str) -> dict[str, Any]:
    """The audit entry that last moved this version into the environment (a rollback restores one placed
    earlier)."""
    for e in reversed(entries):
        if (
            e["outcome"] == "done"
            and e["action"] in ("promote", "canary", "preview")
            and (e["model"], e["to"], e["digest"]) == (model, env, digest)
        ):
            return e
    raise Tampered(f"the audit log never placed {digest} in {env}", hint="restore the registry")


def _evidence(predicate: dict[str, Any], pol: Policy, entry: dict[str, Any], v: Version) -> str:
    """The decision stands as it did when this version was promoted (the same rules, at the promotion's time),
    and it is the very attestation the audit log recorded then."""
    assert v.decision is not None  # verify_version refuses a version without one
    if entry.get("decision") != sha256_file(v.decision):
        raise Tampered(
            f"the decision attestation is not the one the audit log recorded at entry {entry['seq']}",
            hint="restore the registry",
        )
    stands = decision_stands(predicate, pol, parse_time(entry["time"]), " when it was promoted")
    return f"{stands} (entry {entry['seq']})"


def _publish(staging: Path, dest: Path) -> None:
    """Move the checked files into place, each a rename within the destination; if one fails, those already
    moved are removed again, so the destination is whole or empty."""
    moved: list[Path] = []
    try:
        for p in sorted((staging / "files").iterdir()):
            os.replace(p, dest / p.name)
            moved.append(dest / p.name)
    except OSError:
        for m in moved:
            shutil.rmtree(m) if m.is_dir() else m.unlink()
        raise
