"""Roles: who may promote into and roll back an environment is named by role in the policy, resolved against
platform users and teams (a fake GitHub API on loopback), and every refusal names the role it takes."""

from __future__ import annotations

import pytest
import yaml

from mlops_gates import policy as policy_mod
from mlops_gates.errors import PolicyError
from mlops_gates.promotion.promote import rollback
from tests.fakes.api import FakeGitHub
from tests.promotion.release import HOUR, Release, refused


def with_roles(r: Release, roles: dict, **production) -> None:
    doc = yaml.safe_load(r.policy.read_text())
    doc["roles"] = roles
    prod = doc["promotion"]["environments"][2]
    del prod["approvers"]
    prod.update(production)
    r.policy.write_text(yaml.safe_dump(doc, sort_keys=False))
    r.pol = policy_mod.load(r.policy)


def test_roles_decide_who_promotes_and_who_rolls_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = Release(tmp_path, monkeypatch)
    with_roles(
        r,
        {"release": ["alice", "@acme/release-managers"], "oncall": ["bob"]},
        promote=["release"],
        rollback=["release", "oncall"],
    )
    a, b = r.model("a", ["x1", "x2"]), r.model("b", ["x1", "x2", "x3"])
    for env, after, who in (("staging", 1, "ci-bot"), ("canary", 3, "ci-bot"), ("production", 4, "alice")):
        r.promote(a, env, after * HOUR, actor=who)  # alice: a listed user
    r.promote(b, "staging", 4 * HOUR, actor="ci-bot")
    r.promote(b, "canary", 5.5 * HOUR, actor="ci-bot")
    with FakeGitHub({"pat": "release-bot"}, {}) as gh:
        gh.teams["acme/release-managers"] = {"dave"}
        for k, v in {"GITHUB_ACTIONS": "true", "GITHUB_API_URL": gh.url, "GITHUB_TOKEN": "pat"}.items():
            monkeypatch.setenv(k, v)
        why = refused(r.promote, b, "production", 6 * HOUR, "bob", traffic=10)
        assert why.startswith("bob may not promote into production: that takes the role release (")
        assert "bob is not one of those holding release (alice, @acme/release-managers)" in why
        step = r.promote(b, "production", 6 * HOUR, "dave", traffic=10)  # a member of the team
        assert "dave is a member of @acme/release-managers" in step.checks
        why = refused(rollback, r.reg, r.pol, r.name, "production", actor="mallory", now=r.decided + 7 * HOUR)
        assert "that takes the role release or oncall" in why and "mallory" in why
        back = rollback(r.reg, r.pol, r.name, "production", actor="bob", now=r.decided + 7 * HOUR)
        assert back.entry["actor"] == "bob" and back.pointer.canary is None
        assert any(c.path.endswith("/orgs/acme/teams/release-managers/memberships/dave") for c in gh.calls)


def test_a_role_defaults_rollback_to_those_who_promote(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = Release(tmp_path, monkeypatch)
    with_roles(r, {"release": ["alice"]}, promote=["release"])
    a = r.model("a", ["x1", "x2"])
    for env, after, who in (("staging", 1, "ci-bot"), ("canary", 3, "ci-bot"), ("production", 4, "alice")):
        r.promote(a, env, after * HOUR, actor=who)
    why = refused(rollback, r.reg, r.pol, r.name, "production", actor="bob", now=r.decided + 5 * HOUR)
    assert "bob may not roll back production: that takes the role release" in why


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        ({"promote": ["release"]}, "no role named 'release'"),
        ({"promote": ["ops"], "approvers": ["alice"]}, "approvers and roles (promote, rollback) both given"),
        ({"rollback": ["nobody"]}, "no role named 'nobody'"),
    ],
)
def test_a_role_must_be_defined_and_stand_alone(tmp_path, monkeypatch, edit, problem):
    monkeypatch.chdir(tmp_path)
    r = Release(tmp_path, monkeypatch)
    doc = yaml.safe_load(r.policy.read_text())
    doc["roles"] = {"ops": ["alice"]}
    doc["promotion"]["environments"][2].update(edit)
    r.policy.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(PolicyError) as info:
        policy_mod.load(r.policy)
    text = str(info.value)
    assert problem in text and "promotion.environments[2]" in text, text
