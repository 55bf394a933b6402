"""Blue-green environments: a new version enters the idle slot as a preview (no traffic), the switch moves all
traffic to it, and a rollback switches back to the slot that still holds the previous version. The deploy
descriptor says which slot serves and what the idle slot holds; the audit log replays to the same pointers."""

from __future__ import annotations

import pytest
import yaml

from mlops_gates import policy as P
from mlops_gates.errors import Refused
from mlops_gates.promotion.promote import promote, rollback, state, verify_registry
from tests.promotion.release import HOUR, Release, cli, refused


@pytest.fixture
def blue_green(tmp_path, monkeypatch) -> Release:
    monkeypatch.chdir(tmp_path)
    r = Release(tmp_path, monkeypatch)
    doc = yaml.safe_load(r.policy.read_text())
    production = doc["promotion"]["environments"][2]
    del production["canary"]
    production["blue_green"] = True
    r.policy.write_text(yaml.safe_dump(doc, sort_keys=False))
    r.pol = P.load(r.policy)
    return r


def test_preview_switch_and_instant_rollback(blue_green, capsys):
    r = blue_green
    a, b = r.model("a", ["x1", "x2"]), r.model("b", ["x1", "x2", "x3"])
    for env, after in (("staging", HOUR), ("canary", 2 * HOUR), ("production", 4 * HOUR)):
        r.promote(a, env, after)  # nothing serves production yet: no idle slot to preview in
    r.promote(b, "staging", 5 * HOUR)
    r.promote(b, "canary", 6 * HOUR)
    assert "through its preview slot first" in refused(r.promote, b, "production", 7 * HOUR)
    assert "not a canary step" in refused(r.promote, b, "production", 7 * HOUR, traffic=10)

    shown = promote(
        r.reg, r.pol, r.name, b, "production", actor="alice", preview=True, now=r.decided + 7 * HOUR
    )
    shown = shown.descriptor
    assert shown["digest"] == a and shown["traffic"] == [{"digest": a, "percent": 100, "uri": shown["uri"]}]
    slots = shown["blue_green"]
    assert slots["serving"] == "blue" and slots["blue"]["digest"] == a
    assert slots["green"] == {**slots["green"], "digest": b, "traffic": 0, "role": "preview"}
    assert promote(r.reg, r.pol, r.name, a, "production", actor="alice", preview=True).entry is None  # serves
    c = r.model("c", ["x2", "x1"])
    r.promote(c, "staging", 8 * HOUR)
    r.promote(c, "canary", 9 * HOUR)
    with pytest.raises(Refused, match="a preview of .* is in the idle slot"):  # one preview at a time
        promote(r.reg, r.pol, r.name, c, "production", actor="alice", preview=True, now=r.decided + 10 * HOUR)
    withdrawn = rollback(r.reg, r.pol, r.name, "production", actor="alice")
    assert withdrawn.entry["reason"] == "preview withdrawn" and withdrawn.descriptor["digest"] == a
    assert state(r.reg)[1][(r.name, "production")].preview is None

    promote(r.reg, r.pol, r.name, c, "production", actor="alice", preview=True, now=r.decided + 10 * HOUR)
    switched = r.promote(c, "production", 11 * HOUR)
    slots = switched.descriptor["blue_green"]
    assert switched.descriptor["digest"] == c and slots["serving"] == "green"
    assert slots["blue"]["digest"] == a and slots["blue"]["role"] == "previous"  # the instant way back

    back = rollback(r.reg, r.pol, r.name, "production", actor="alice")
    assert back.descriptor["digest"] == a and back.descriptor["blue_green"]["serving"] == "blue"
    pointer = state(r.reg)[1][(r.name, "production")]
    assert pointer.digest == a and pointer.slot == "blue" and pointer.preview is None
    assert verify_registry(r.reg)[1] == []
    actions = [
        e["action"] for e in r.reg.ledger.entries() if e["outcome"] == "done" and e["to"] == "production"
    ]
    assert actions == ["promote", "preview", "rollback", "preview", "promote", "rollback"]


def test_a_preview_needs_a_blue_green_environment(blue_green, capsys):
    r = blue_green
    a, b = r.model("a", ["x1", "x2"]), r.model("b", ["x1", "x2", "x3"])
    r.promote(a, "staging", HOUR)
    with pytest.raises(Refused, match="staging has no preview slot"):
        promote(r.reg, r.pol, r.name, b, "staging", actor="alice", preview=True)
    code, _, err = cli(
        r,
        capsys,
        "promote",
        "--model",
        "churn",
        "--digest",
        b,
        "--to",
        "staging",
        "--preview",
        "--actor",
        "alice",
    )
    assert code == 1 and "staging has no preview slot" in err
