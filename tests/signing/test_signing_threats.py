"""Threat: a signed verdict is moved onto another model, a malformed signature crashes or passes, an
impersonated approver is obeyed, or a damaged registry crashes instead of being reported."""

from __future__ import annotations

import base64
import copy
import json
import os
from pathlib import Path

import pytest

from mlops_gates.evaluation import run
from mlops_gates.signing.envelope import PrivateKey
from mlops_gates.signing.sign import sign
from mlops_gates.signing.statements import PAYLOAD_TYPE, canonical, decision_statement, manifest
from tests.conftest import binary_policy, cli_main, write_policy
from tests.signing.test_signing import keypair


def _cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli_main(monkeypatch, *args)
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return code, out, err


@pytest.fixture
def gated(binary_case, tmp_path):
    """A model folder, a real decision about it, a key pair."""
    folder, _ = binary_case
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(bytes(range(256)) * 4)
    (model / "config.json").write_text('{"layers": 2}')
    policy = write_policy(folder / "gates.yml", binary_policy())
    run(policy, folder / "out", model_paths={"candidate": model})
    priv, pub = keypair(tmp_path)
    return model, folder / "out" / "decision.json", priv, pub


def _verify(monkeypatch, capsys, model: Path, pub: Path) -> tuple[int, str, str]:
    return _cli(
        monkeypatch, capsys, "verify", str(model), "--signature", str(model / "model.sig"), "--key", str(pub)
    )


def test_a_decision_about_another_model_is_never_signed(gated, tmp_path, monkeypatch, capsys):
    model, record, priv, pub = gated
    other = tmp_path / "other"
    other.mkdir()
    (other / "weights.bin").write_bytes(b"another model")
    code, _, err = _cli(
        monkeypatch, capsys, "sign", str(other), "--key", str(priv), "--decision", str(record)
    )
    assert code == 2 and "refused: the decision is about the candidate sha256:" in err
    assert not (other / "model.sig").exists() and not (other / "model.decision.sig").exists()
    # a record that pins no candidate (predictions only) binds to nothing: refused too
    rec = json.loads(record.read_text())
    del rec["inputs"]["models"]
    (tmp_path / "unbound.json").write_text(json.dumps(rec))
    code, _, err = _cli(
        monkeypatch,
        capsys,
        "sign",
        str(model),
        "--key",
        str(priv),
        "--decision",
        str(tmp_path / "unbound.json"),
    )
    assert code == 2 and "the decision names no candidate model" in err
    # the right folder signs, and the attestation carries the digests the decision was about
    code, _, err = _cli(
        monkeypatch, capsys, "sign", str(model), "--key", str(priv), "--decision", str(record)
    )
    assert code == 0, err
    env = json.loads((model / "model.decision.sig").read_text())["dsseEnvelope"]
    pred = json.loads(base64.b64decode(env["payload"]))["predicate"]
    assert (
        pred["models"]["candidate"]["digest"]
        == json.loads(record.read_text())["inputs"]["models"]["candidate"]["digest"]
    )
    assert _verify(monkeypatch, capsys, model, pub)[0] == 0


def test_verify_checks_the_attested_model(gated, monkeypatch, capsys):
    """An attestation whose subjects are this folder but whose decision was about another candidate (made with
    the signing key by hand) fails verification by name."""
    model, record, priv, pub = gated
    signed = sign(model, PrivateKey.load(priv), decision=record)
    rec = json.loads(record.read_text())
    rec["inputs"]["models"]["candidate"] = {"path": "x", "digest": "sha256:" + "1" * 64}
    m = manifest(model, [str(signed.signature), str(signed.decision)])
    payload = canonical(m.statement())
    bundle = PrivateKey.load(priv).sign_bundle(canonical(decision_statement(rec, m, payload)), PAYLOAD_TYPE)
    (model / "model.decision.sig").write_text(json.dumps(bundle))
    code, _, err = _verify(monkeypatch, capsys, model, pub)
    assert code == 1 and "decision model" in err and "1111" in err


def test_a_decision_signed_by_another_key_fails(gated, tmp_path, monkeypatch, capsys):
    model, record, priv, pub = gated
    sign(model, PrivateKey.load(priv), decision=record)
    keep = (model / "model.sig").read_text()
    other_dir = tmp_path / "k2"
    other_dir.mkdir()
    other, _ = keypair(other_dir)
    sign(model, PrivateKey.load(other), decision=record)  # both by the other key
    (model / "model.sig").write_text(keep)  # the model's by ours again
    code, _, err = _verify(monkeypatch, capsys, model, pub)
    assert code == 1 and "decision" in err and "key" in err


def _mutations() -> dict[str, object]:
    """Each changes one field of a valid bundle to another JSON type (or shape)."""

    def at(path: list, value):
        def apply(b: dict) -> dict:
            b = copy.deepcopy(b)
            node = b
            for k in path[:-1]:
                node = node[k]
            node[path[-1]] = value
            return b

        return apply

    def statement(fn):
        def apply(b: dict) -> dict:
            b = copy.deepcopy(b)
            st = json.loads(base64.b64decode(b["dsseEnvelope"]["payload"]))
            fn(st)
            b["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(st).encode()).decode()
            return b

        return apply

    return {
        "payload a number": at(["dsseEnvelope", "payload"], 5),
        "signatures an object": at(["dsseEnvelope", "signatures"], {"sig": "x"}),
        "signature a string": at(["dsseEnvelope", "signatures"], ["x"]),
        "no signatures": at(["dsseEnvelope", "signatures"], []),
        "envelope a list": at(["dsseEnvelope"], []),
        "payload type a list": at(["dsseEnvelope", "payloadType"], []),
        "verification material a string": at(["verificationMaterial"], "x"),
        "hint a number": at(["verificationMaterial", "publicKey", "hint"], 7),
        "whole bundle a list": lambda b: [b],
        "resources an object": statement(lambda st: st["predicate"].__setitem__("resources", {"a": 1})),
        "resources of strings": statement(lambda st: st["predicate"].__setitem__("resources", ["a"])),
        "subject a string": statement(lambda st: st.__setitem__("subject", "x")),
        "predicate a list": statement(lambda st: st.__setitem__("predicate", [])),
    }


@pytest.mark.parametrize("name", sorted(_mutations()))
def test_malformed_bundles_fail_verification_with_the_reason(gated, monkeypatch, capsys, name):
    model, record, priv, pub = gated
    sign(model, PrivateKey.load(priv))
    good = json.loads((model / "model.sig").read_text())
    (model / "model.sig").write_text(json.dumps(_mutations()[name](good)))  # type: ignore[operator]
    code, out, err = _verify(monkeypatch, capsys, model, pub)
    assert code == 1, (name, out, err)
    assert "FAILED" in err or "malformed" in err


def test_a_symlink_added_to_a_signed_folder_fails_verification(gated, tmp_path, monkeypatch, capsys):
    model, record, priv, pub = gated
    sign(model, PrivateKey.load(priv), decision=record)
    (tmp_path / "outside.txt").write_text("x")
    os.symlink(tmp_path / "outside.txt", model / "extra.txt")
    code, _, err = _verify(monkeypatch, capsys, model, pub)
    assert code == 1 and "symbolic link" in err


# ---------------------------------------------------------------- the actor and the registry


def _registry(tmp_path: Path, monkeypatch, capsys) -> tuple[Path, Path]:
    model = tmp_path / "m"
    model.mkdir()
    (model / "w.bin").write_bytes(b"weights")
    policy = tmp_path / "gates.yml"
    pol = binary_policy()
    pol["promotion"] = {
        "registry": "reg",
        "environments": [{"name": "staging", "signers": [{"key": "k.pub"}]}],
    }
    write_policy(policy, pol)
    code, out, err = _cli(
        monkeypatch,
        capsys,
        "register",
        "--policy",
        str(policy),
        "--model",
        "churn",
        str(model),
        "--actor",
        "ci",
    )
    assert code == 0, err
    return tmp_path / "reg", policy


@pytest.mark.parametrize(
    "env",
    [
        {"GITHUB_ACTIONS": "true", "GITHUB_ACTOR": "carol"},
        {"GITHUB_ACTIONS": "true", "GITHUB_ACTOR": "alice", "GITHUB_TRIGGERING_ACTOR": "carol"},
        {"GITLAB_CI": "true", "GITLAB_USER_LOGIN": "carol"},
    ],
)
def test_in_ci_the_platform_names_the_actor(tmp_path, monkeypatch, capsys, env):
    reg, policy = _registry(tmp_path, monkeypatch, capsys)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    code, _, err = _cli(
        monkeypatch,
        capsys,
        "promote",
        "--policy",
        str(policy),
        "--model",
        "churn",
        "--digest",
        "sha256:" + "0" * 64,
        "--to",
        "staging",
        "--actor",
        "alice",
    )
    assert code == 2 and "refused: --actor alice differs" in err and "(carol)" in err, err


def _corrupt(reg: Path, how: str) -> None:
    if how == "pointer is a folder":
        (reg / "models" / "churn" / "environments" / "staging.json").mkdir(parents=True)
    elif how == "pointer is a list":
        (reg / "models" / "churn" / "environments").mkdir(parents=True)
        (reg / "models" / "churn" / "environments" / "staging.json").write_text("[1]")
    elif how == "audit log not UTF-8":
        (reg / "audit.jsonl").write_bytes((reg / "audit.jsonl").read_bytes() + b"\xff\xfe\n")
    elif how == "audit log is a folder":
        (reg / "audit.jsonl").unlink()
        (reg / "audit.jsonl").mkdir()
    elif how == "head not JSON":
        (reg / "audit.head.json").write_text("{not json")
    elif how == "head a list":
        (reg / "audit.head.json").write_text("[1, 2]")
    elif how == "head seq a string":
        (reg / "audit.head.json").write_text('{"seq": "1", "hash": "x"}')
    elif how == "version.json a list":
        (next((reg / "models" / "churn" / "versions").iterdir()) / "version.json").write_text("[]")
    elif how == "version.json not UTF-8":
        (next((reg / "models" / "churn" / "versions").iterdir()) / "version.json").write_bytes(b"\xff")


@pytest.mark.parametrize(
    "how",
    [
        "pointer is a folder",
        "pointer is a list",
        "audit log not UTF-8",
        "audit log is a folder",
        "head not JSON",
        "head a list",
        "head seq a string",
        "version.json a list",
        "version.json not UTF-8",
    ],
)
def test_a_corrupt_registry_is_reported_never_a_crash(tmp_path, monkeypatch, capsys, how):
    reg, policy = _registry(tmp_path, monkeypatch, capsys)
    _corrupt(reg, how)
    code, _, err = _cli(monkeypatch, capsys, "audit", "verify", "--policy", str(policy))
    assert code == 1 and "BROKEN" in err, (how, err)
    code, _, err = _cli(monkeypatch, capsys, "audit", "show", "--policy", str(policy))
    assert code in (0, 1), (how, err)  # show reads the log and pointers; a broken one is REFUSED (1)
