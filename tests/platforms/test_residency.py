"""Residency: under `residency.publish`, what reaches the code host (comment, statuses, check run, step summary,
annotations, the MR's JUnit and Code Quality widgets) carries no per-group number, or nothing but the verdict,
while decision.json and report.html keep everything. Private signing refuses public-good Sigstore."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from mlops_gates import policy as policy_mod
from mlops_gates.errors import PolicyError
from mlops_gates.platforms.publish import publish
from mlops_gates.report.format import num
from tests.conftest import binary_policy, cli_main, write_policy
from tests.fakes.api import FakeGitHub, FakeGitLab
from tests.platforms.test_publish import GL_TOKEN, HEAD, TOKEN, github_env, gitlab_env

GATES = [
    {"type": "accuracy", "slices": True, "metrics": [{"metric": "accuracy", "op": ">=", "value": 0.6}]},
    {
        "type": "fairness",
        "metrics": [
            {"metric": "demographic_parity_ratio", "op": ">=", "value": 0.8},
            {"metric": "tpr_difference", "op": "<=", "value": 0.1},
        ],
    },
]


def residency_policy(**residency) -> dict:
    doc = binary_policy(gates=GATES, residency=residency)
    doc["columns"].update(sensitive=["sex"], slices=["race"])
    return doc


def evaluate(folder: Path, env: dict[str, str], monkeypatch, residency: dict) -> Path:
    from mlops_gates.evaluation import run

    policy = write_policy(folder / "gates.yml", residency_policy(**residency))
    with monkeypatch.context() as m:
        for k, v in env.items():
            m.setenv(k, v)
        run(policy, folder / "out")
    return folder / "out" / "decision.json"


def group_facts(rec: dict) -> tuple[set[str], set[str]]:
    """The per-group scopes and numbers of a record (those that differ from every overall number)."""
    overall = {num(m["value"]) for g in rec["gates"] for m in g["metrics"] if m["scope"] == "overall"}
    scopes, numbers = set(), set()
    for g in rec["gates"]:
        for m in g["metrics"]:
            if m["scope"] != "overall":
                scopes.add(m["scope"])
                if m["value"] is not None and num(m["value"]) not in overall:
                    numbers.add(num(m["value"]))
        for row in g["details"].get("groups", []):
            for side in ("candidate", "baseline"):
                for v in row.get(side, {}).values():
                    if isinstance(v, dict) and v.get("value") is not None:
                        numbers.add(f"{v['value']:.3f}")
    return scopes, numbers


def posted_texts(gh: FakeGitHub, tmp_path: Path, out: str) -> list[str]:
    return (
        [c["body"] for cs in gh.comments.values() for c in cs]
        + [s["description"] or "" for s in gh.statuses]
        + [json.dumps(r) for r in gh.check_runs]
        + [(tmp_path / "summary.md").read_text(), out]
    )


def test_aggregate_posts_no_per_group_number_and_keeps_them_in_the_artifacts(
    binary_case, tmp_path, monkeypatch, capsys
):
    folder, _ = binary_case
    with FakeGitHub({TOKEN: "gate-bot"}, {7: HEAD}) as gh:
        env = github_env(tmp_path, gh.url)
        record = evaluate(folder, env, monkeypatch, {"publish": "aggregate"})
        capsys.readouterr()
        publish(record, env=env, check_run=True)
        out = capsys.readouterr().out
        rec = json.loads(record.read_text())
        scopes, numbers = group_facts(rec)
        assert scopes and numbers and rec["residency"] == {"publish": "aggregate", "min_group_size": None}
        texts = posted_texts(gh, tmp_path, out)
    comment = gh.comments[7][0]["body"]
    assert "Residency: per-group" in comment and "accuracy" in comment and "fairness" in comment
    for text in texts:
        for s in scopes:
            assert s not in text, s
        for n in numbers:  # as a number of its own, not the start of a longer one
            assert not re.search(rf"(?<![\d.]){re.escape(n)}(?!\d)", text), n
    junit = (record.parent / "junit.xml").read_text()
    assert not any(s in junit for s in scopes)
    full = (record.parent / "report.html").read_text() + (record.parent / "report.md").read_text()
    assert all(s in full for s in scopes if "=" in s)  # the in-region artifacts keep it all


def test_groups_from_a_size_up_and_gitlab_widgets(binary_case, monkeypatch):
    folder, frame = binary_case
    with FakeGitLab({GL_TOKEN: 11}) as gl:
        env = gitlab_env(gl.url)
        record = evaluate(folder, env, monkeypatch, {"publish": "aggregate", "min_group_size": 1000})
        publish(record, env=env)
        rec = json.loads(record.read_text())
        note = gl.notes[3][0]["body"]
    sizes = {s: int((frame[s.split("=")[0]] == s.split("=")[1]).sum()) for s in ("race=a", "race=c")}
    assert sizes["race=a"] >= 1000 > sizes["race=c"]
    assert "race\\=a" in note and "race\\=c" not in note and "between groups" not in note
    cq = (record.parent / "gl-code-quality.json").read_text()
    scopes, numbers = group_facts(rec)
    assert not any(s in cq for s in scopes)
    assert not any(re.search(rf"(?<![\d.]){re.escape(n)}(?!\d)", cq) for n in numbers)


def test_verdict_only(binary_case, tmp_path, monkeypatch, capsys):
    folder, _ = binary_case
    with FakeGitHub({TOKEN: "gate-bot"}, {7: HEAD}) as gh:
        env = github_env(tmp_path, gh.url)
        record = evaluate(folder, env, monkeypatch, {"publish": "verdict"})
        capsys.readouterr()
        publish(record, env=env)
        out = capsys.readouterr().out
        rec = json.loads(record.read_text())
    comment = gh.comments[7][0]["body"]
    assert f"**{rec['decision']}**" in comment and "accuracy" not in comment and "fairness" not in comment
    assert "rows" not in comment and "Residency: the results stay" in comment
    assert {s["context"] for s in gh.statuses} == {"mlops-gates"}
    assert "accuracy" not in (tmp_path / "summary.md").read_text() and "::error" not in out


def test_private_signing_refuses_public_good_sigstore(binary_case, monkeypatch, capsys, tmp_path):
    folder, _ = binary_case
    doc = residency_policy(signing="private")
    doc["promotion"] = {
        "environments": [
            {"name": "staging", "signers": [{"key": "k.pub"}]},
            {"name": "production", "signers": [{"identity": "x@acme.com", "issuer": "https://idp"}]},
        ]
    }
    policy = write_policy(folder / "gates.yml", doc)
    with pytest.raises(PolicyError) as info:
        policy_mod.load(policy)
    assert "promotion.environments[1].signers[0]" in str(info.value) and "public-good Sigstore" in str(
        info.value
    )
    doc["promotion"]["environments"][1]["signers"][0]["trust_root"] = "root.json"
    write_policy(policy, doc)
    assert policy_mod.load(policy).residency.signing == "private"
    (folder / "m").mkdir()
    (folder / "m" / "w.bin").write_bytes(b"w")
    monkeypatch.setenv("SIGSTORE_ID_TOKEN", "not-used")
    code = cli_main(monkeypatch, "sign", str(folder / "m"), "--residency-policy", str(policy))
    err = capsys.readouterr().err
    assert code == 2 and "residency keeps signatures off public-good Sigstore" in err
    assert not (folder / "m" / "model.sig").exists()
    assert yaml.safe_load(policy.read_text())["residency"] == {"signing": "private"}
