"""`audit export`: the log as Elastic Common Schema documents (each field checked against ECS 9.4.0's published
field list), whose chain a receiver can check from the export alone and continue incrementally; and
`promotion.retention`: a version removed before its retention ends is reported, one removed without a
retention period too, one removed after it is a note."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_gates.errors import Refused
from mlops_gates.promotion.export import check_export, retention
from tests.promotion.release import HOUR, Release, cli

ECS = Path(__file__).resolve().parents[1] / "assets" / "ecs" / "ecs_flat-v9.4.0.yml.gz"
JSON_TYPES = {
    "keyword": str,
    "wildcard": str,
    "match_only_text": str,
    "text": str,
    "date": str,
    "long": int,
    "integer": int,
    "object": dict,
}


def flat(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in doc.items():
        if isinstance(v, dict) and k != "labels":
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def ecs_problems(doc: dict[str, Any], fields: dict[str, Any]) -> list[str]:
    """Every field outside our own `mlops_gates` namespace is an ECS field of the right type, and takes one of
    its allowed values where ECS lists them."""
    problems = []
    for name, value in flat(doc).items():
        if name.startswith("mlops_gates."):
            continue
        spec = fields.get(name)
        if spec is None:
            problems.append(f"{name} is not an ECS field")
            continue
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list) and "array" not in spec.get("normalize", []):
            problems.append(f"{name} is not an array in ECS")
        for v in values:
            if not isinstance(v, JSON_TYPES[spec["type"]]):
                problems.append(f"{name}: {v!r} is not {spec['type']}")
        allowed = {a["name"] for a in spec.get("allowed_values", [])}
        if allowed and not set(values) <= allowed:
            problems.append(f"{name}: {values} not among {sorted(allowed)}")
    return problems


def walked(r: Release) -> tuple[str, str]:
    """a through staging and canary; b into staging, replacing a there; a refused promotion."""
    a = r.model("a", ["x1", "x2"])
    b = r.model("b", ["x1", "x2", "x3"])
    r.promote(a, "staging", HOUR)
    r.promote(a, "canary", 3 * HOUR)
    r.promote(b, "staging", 4 * HOUR)
    with pytest.raises(Refused, match="cannot be skipped"):  # refused, and logged
        r.promote(b, "production", 5 * HOUR)
    return a, b


def test_the_log_exports_as_ecs_with_its_chain_and_continues_incrementally(folder_release, capsys):
    r = folder_release
    walked(r)
    fields = yaml.safe_load(gzip.decompress(ECS.read_bytes()))
    code, out, err = cli(r, capsys, "audit", "export", "--registry", "registry")
    assert code == 0, err
    docs = [json.loads(line) for line in out.splitlines()]
    entries = r.reg.ledger.entries()
    assert len(docs) == len(entries) and "exported" in err
    for d in docs:
        assert ecs_problems(d, fields) == [], ecs_problems(d, fields)
    assert check_export(docs, None) == []
    outcomes = {(d["event"]["action"], d["event"]["outcome"]) for d in docs}
    assert ("model-promote", "failure") in outcomes and ("model-register", "success") in outcomes

    # incrementally: the rest, continuing the copy the receiver holds
    held = docs[:3]
    code, out, err = cli(
        r,
        capsys,
        "audit",
        "export",
        "--registry",
        "registry",
        "--from",
        "4",
        "--after",
        held[-1]["event"]["hash"],
    )
    assert code == 0, err
    rest = [json.loads(line) for line in out.splitlines()]
    assert check_export(held + rest, None) == [] and len(held + rest) == len(docs)
    code, _, err = cli(
        r, capsys, "audit", "export", "--registry", "registry", "--from", "4", "--after", "sha256:" + "0" * 64
    )
    assert code == 1 and "diverged" in err
    code, _, err = cli(r, capsys, "audit", "export", "--registry", "registry", "--from", "99")
    assert code == 2 and "no entry 99" in err

    # a receiver sees an edited export
    forged = json.loads(docs[2]["event"]["original"])
    forged["actor"] = "mallory"
    docs[2]["event"]["original"] = json.dumps(forged)
    assert check_export(docs, None) == ["entry 3: its hash does not hold"]


def test_retention_reports_versions_removed_early(folder_release, capsys):
    r = folder_release
    a, b = walked(r)  # a serves in canary; b serves in staging
    c = r.model("c", ["x1"])  # registered, never served
    store = r.root / "registry" / "models" / r.name / "versions"
    removed = store / c.split(":")[1]
    shutil.move(removed, r.root / "elsewhere")
    entries = r.reg.ledger.entries()
    now = r.decided + 10 * HOUR
    problems, notes = retention(r.reg, entries, None, now)
    assert problems == [
        f"{r.name} {c}: registered at {next(e['time'] for e in entries if e['digest'] == c)}, no longer in the store"
    ]
    problems, notes = retention(r.reg, entries, 30 * 86400, now)
    assert len(problems) == 1 and "removed before its retention ended" in problems[0] and notes == []
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=31)
    problems, notes = retention(r.reg, entries, 30 * 86400, later)
    assert problems == [] and len(notes) == 1 and "removed after its retention ended" in notes[0]

    # through the command, with the policy's retention
    text = r.policy.read_text().replace(
        "max_decision_age: 7d", "max_decision_age: 7d\n  retention:\n    versions: 30d"
    )
    r.policy.write_text(text)
    code, _, err = cli(r, capsys, "audit", "verify", "--policy", str(r.policy))
    assert code == 1 and "removed before its retention ended" in err
    shutil.move(r.root / "elsewhere", removed)
    code, out, err = cli(r, capsys, "audit", "verify", "--policy", str(r.policy))
    assert code == 0, err
