"""A model's lineage from the registry: for each version, how it was trained (code, data, configuration,
environment, as the training attestation linked by its decision says), what the gate decided on which data
under which policy, and every move through the environments since. The audit log is checked first; the
attestations are read as signed (`verify` and `fetch` check the signatures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlops_gates.promotion.promote import state
from mlops_gates.promotion.registry import Registry, check_name
from mlops_gates.report.escape import one_line
from mlops_gates.signing.provenance import link_problem


def _predicate(path: Path) -> dict[str, Any] | None:
    from mlops_gates.signing.envelope import unverified_statement

    predicate = (unverified_statement(path) or {}).get("predicate")
    return predicate if isinstance(predicate, dict) else None


def _training(pred: dict[str, Any] | None) -> dict[str, Any] | None:
    """The training attestation the decision linked, when the link has the record's shape."""
    try:
        link = pred["models"]["candidate"]["provenance"]  # type: ignore[index]
    except (KeyError, TypeError):
        return None
    return link if link_problem(link) is None else None


def _decision(pred: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the decision attestation says, as text; None when it says nothing readable."""
    if pred is None:
        return None
    data, policy = pred.get("data"), pred.get("policy")
    return {
        "verdict": str(pred.get("decision")),
        "decided_at": str(pred.get("decided_at")),
        "policy": str(policy.get("digest")) if isinstance(policy, dict) else None,
        "data": {str(k): str(v.get("digest")) for k, v in data.items() if isinstance(v, dict)}
        if isinstance(data, dict)
        else {},
    }


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
                "training": _training(pred),
                "decision": _decision(pred),
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
    return "\n".join(one_line(line) for line in lines)  # a value from a file cannot start a line of its own
