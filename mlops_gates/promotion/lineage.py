"""A model's lineage from the registry: for each version, how it was trained (code, data, configuration,
environment, as the training attestation linked by its decision says), what the gate decided on which data
under which policy, and every move through the environments since. The audit log is checked first; the
attestations are read as signed (`verify` and `fetch` check the signatures)."""

from __future__ import annotations

import base64
import json
from typing import Any

from mlops_gates.promotion.promote import state
from mlops_gates.promotion.registry import Registry, check_name


def _predicate(path: Any) -> dict[str, Any] | None:
    try:
        bundle = json.loads(path.read_bytes())
        predicate: dict[str, Any] = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))[
            "predicate"
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return predicate


def lineage(reg: Registry, model: str) -> list[dict[str, Any]]:
    """One record per registered version, oldest first."""
    check_name(model)
    entries, _ = state(reg)
    out = []
    for reg_entry in [e for e in entries if e["model"] == model and e["action"] == "register"]:
        if reg_entry["outcome"] != "done":
            continue
        digest = reg_entry["digest"]
        version = reg.store.version(model, digest)
        pred = _predicate(version.decision) if version.decision else None
        decision = None
        if pred is not None:
            decision = {
                "verdict": pred.get("decision"),
                "decided_at": pred.get("decided_at"),
                "policy": (pred.get("policy") or {}).get("digest"),
                "data": {k: v.get("digest") for k, v in (pred.get("data") or {}).items()},
            }
        candidate = ((pred or {}).get("models") or {}).get("candidate") or {}
        moves = [
            {k: e[k] for k in ("time", "action", "to", "traffic", "actor", "seq")}
            for e in entries
            if e["model"] == model
            and e["digest"] == digest
            and e["action"] != "register"
            and e["outcome"] == "done"
        ]
        out.append(
            {
                "model": model,
                "digest": digest,
                "registered": {
                    "time": reg_entry["time"],
                    "actor": reg_entry["actor"],
                    "seq": reg_entry["seq"],
                },
                "training": candidate.get("provenance"),
                "decision": decision,
                "moves": moves,
            }
        )
    return out


def render(records: list[dict[str, Any]]) -> str:
    lines = []
    for r in records:
        lines.append(f"{r['model']} {r['digest']}")
        reg = r["registered"]
        lines.append(f"  registered  {reg['time']} by {reg['actor'] or '?'} (entry {reg['seq']})")
        t = r["training"]
        if t:
            lines.append(f"  trained     from {t['repository']} at {t['commit']} (attestation {t['digest']})")
            for d in t["data"]:
                lines.append(f"    data      {d['name']} {d['digest']}")
            if t["config"]:
                lines.append(f"    config    {t['config']['name']} {t['config']['digest']}")
            env = t["environment"]
            lines.append(f"    env       {env['kind']} {env['digest']}")
        else:
            lines.append("  trained     (no training attestation linked)")
        d = r["decision"]
        if d:
            data = ", ".join(f"{k} {v}" for k, v in d["data"].items())
            lines.append(
                f"  gated       {d['verdict']} at {d['decided_at']} under policy {d['policy']}; {data}"
            )
        else:
            lines.append("  gated       (no decision attestation)")
        for m in r["moves"]:
            share = f" {m['traffic']}%" if m["traffic"] is not None else ""
            lines.append(
                f"  {m['action']:<11} {m['to']}{share} at {m['time']} by {m['actor'] or '?'} (entry {m['seq']})"
            )
    return "\n".join(lines)
