"""Encryption at rest: a folder registry whose versions are sealed (a data key per version, wrapped by the
registry key) registers, promotes, fetches and verifies as a plain one does; it refuses with the wrong key or
none, catches edited, swapped and cut files, and rotates its key (files untouched) to another file or to a key
inside a real SoftHSM2 token."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlops_gates import policy as policy_mod
from mlops_gates.digest import folder_files, root_digest
from mlops_gates.errors import GateError, Tampered
from mlops_gates.promotion import crypt
from mlops_gates.promotion.fetch import fetch
from mlops_gates.promotion.promote import verify_registry
from mlops_gates.promotion.stores import open_registry
from tests.promotion.release import HOUR, Release, cli
from tests.promotion.test_fetch import empty

EXE = str(Path(sys.executable).parent / "mlops-gates")


def key_file(path: Path) -> Path:
    path.write_bytes(base64.b64encode(os.urandom(32)) + b"\n")
    return path


def encrypted(r: Release) -> Path:
    """The world's policy with promotion.encrypted, and a registry key in the environment."""
    doc = yaml.safe_load(r.policy.read_text())
    doc["promotion"]["encrypted"] = True
    r.policy.write_text(yaml.safe_dump(doc, sort_keys=False))
    r.pol = policy_mod.load(r.policy)
    key = key_file(r.root / "secrets-registry.key")
    r.mp.setenv(crypt.KEY_ENV, str(key))
    r.reg = open_registry(r.pol.promotion.registry, r.pol.promotion.ledger, True)
    return key


def walk(r: Release, digest: str) -> None:
    for env, after in (("staging", 1), ("canary", 3), ("production", 4)):
        r.promote(digest, env, after * HOUR)


def sealed_files(r: Release) -> dict[Path, bytes]:
    return {
        p: p.read_bytes()
        for p in Path(r.pol.promotion.registry).rglob("*")
        if p.is_file() and (p.parent.name == "files" or p.name.endswith(".sig"))
    }


def test_an_encrypted_registry_promotes_fetches_and_verifies(folder_release, capsys):
    r = folder_release
    encrypted(r)
    a = r.model("a", ["x1", "x2"])
    walk(r, a)
    plain = (r.root / "releases" / "a" / "model.skops").read_bytes()
    stored = sealed_files(r)
    assert len(stored) == 4 and all(b.startswith(crypt.MAGIC) for b in stored.values())
    assert not any(plain[:64] in b for b in stored.values())
    assert not any(b"PROMOTE" in b for b in stored.values())  # the decision's numbers are sealed too
    got = fetch(r.reg, r.pol, r.name, "production", r.root / "serve")
    assert got.digest == a and root_digest(folder_files(r.root / "serve")) == a
    assert (r.root / "serve" / "model.skops").read_bytes() == plain
    assert verify_registry(r.reg) == (len(r.reg.ledger.entries()), [])
    code, _, err = cli(r, capsys, "audit", "verify")
    assert code == 0, err
    code, _, err = cli(r, capsys, "fetch", "--model", r.name, "--env", "production", "--dest", "cli-serve")
    assert code == 0 and (r.root / "cli-serve" / "model.skops").read_bytes() == plain, err

    # the wrong key, or none: a configuration error naming the keys, nothing written
    r.mp.setenv(crypt.KEY_ENV, str(key_file(r.root / "other.key")))
    code, _, err = cli(r, capsys, "fetch", "--model", r.name, "--env", "production", "--dest", "wrong")
    assert code == 2 and "is wrapped by the registry key file:" in err and empty(r.root / "wrong")
    r.mp.delenv(crypt.KEY_ENV)
    code, _, err = cli(r, capsys, "fetch", "--model", r.name, "--env", "production", "--dest", "none")
    assert code == 2 and f"set {crypt.KEY_ENV}" in err
    with pytest.raises(GateError, match="built for folder registries"):
        open_registry("mlflow+http://127.0.0.1:9", r.root / "ledger", True)


def test_edited_swapped_and_cut_files_are_caught(folder_release, capsys):
    r = folder_release
    encrypted(r)
    a, b = r.model("a", ["x1", "x2"]), r.model("b", ["x1", "x2", "x3"])
    walk(r, a)
    va = Path(r.reg.store.version(r.name, a).uri).parent
    vb = Path(r.reg.store.version(r.name, b).uri).parent
    feats = va / "files" / "features.json"
    original = feats.read_bytes()

    def caught(edit) -> str:
        fresh = open_registry(r.pol.promotion.registry, r.pol.promotion.ledger, True)  # no decrypted copies
        edit()
        try:
            with pytest.raises(Tampered) as info:
                fresh.store.version(r.name, a)
            return info.value.message
        finally:
            feats.write_bytes(original)

    flipped = bytearray(original)
    flipped[-1] ^= 1
    assert "changed after it was registered" in caught(lambda: feats.write_bytes(bytes(flipped)))
    swapped = (vb / "files" / "features.json").read_bytes()
    assert "changed after it was registered" in caught(lambda: feats.write_bytes(swapped))
    assert "not a sealed file" in caught(lambda: feats.write_bytes(b'["x1", "x2"]'))
    assert "changed after it was registered" in caught(lambda: feats.write_bytes(original[:-1]))
    key_json = va / "key.json"
    saved = key_json.read_text()
    key_json.write_text(saved.replace('"iv": "', '"iv": "AAAA'))
    fresh = open_registry(r.pol.promotion.registry, r.pol.promotion.ledger, True)
    with pytest.raises(Tampered):
        fresh.store.version(r.name, a)
    key_json.write_text(saved)
    code, _, err = cli(r, capsys, "audit", "verify")
    assert code == 0, err


def test_the_registry_key_rotates_and_plain_versions_get_sealed(folder_release, capsys):
    r = folder_release
    a = r.model("a", ["x1", "x2"])  # registered plain
    walk(r, a)
    key = encrypted(r)  # now the policy wants encryption at rest
    code, _, err = cli(r, capsys, "fetch", "--model", r.name, "--env", "production", "--dest", "x")
    assert code == 1 and "stored unencrypted in a registry encrypted at rest" in err
    code, out, err = cli(r, capsys, "registry", "rotate-key", "--new-key", str(key))
    assert code == 0 and "rewrapped 0 and sealed 1 versions" in out, err
    b = r.model("b", ["x1", "x2", "x3"])
    before = sealed_files(r)
    new = key_file(r.root / "rotated.key")
    code, out, err = cli(r, capsys, "registry", "rotate-key", "--new-key", str(new))
    assert code == 0 and "rewrapped 2 and sealed 0 versions" in out, err
    assert sealed_files(r) == before  # envelope encryption: only the wrapped data keys changed
    code, out, err = cli(
        r, capsys, "registry", "rotate-key", "--new-key", str(new)
    )  # again, as after a crash
    assert code == 0 and "rewrapped 0 and sealed 0 versions" in out, err
    code, _, err = cli(r, capsys, "fetch", "--model", r.name, "--env", "production", "--dest", "old")
    assert code == 2 and "not by file:" in err
    r.mp.setenv(crypt.KEY_ENV, str(new))
    r.reg = open_registry(r.pol.promotion.registry, r.pol.promotion.ledger, True)
    r.promote(b, "staging", 5 * HOUR)
    code, _, err = cli(r, capsys, "fetch", "--model", r.name, "--env", "staging", "--dest", "new")
    assert code == 0 and root_digest(folder_files(r.root / "new")) == b, err


def test_a_registry_key_inside_a_softhsm2_token(folder_release, tmp_path):
    from tests.signing.test_hardware import PIN, softhsm_module, softhsm_token

    r = folder_release
    key = encrypted(r)
    a = r.model("a", ["x1", "x2"])
    walk(r, a)
    (tmp_path / "vault").mkdir()
    env = softhsm_token(
        tmp_path / "vault",
        "vault",
        """
        session.generateKey(
            [(PyKCS11.CKA_CLASS, PyKCS11.CKO_SECRET_KEY), (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_AES),
             (PyKCS11.CKA_VALUE_LEN, 32), (PyKCS11.CKA_TOKEN, True), (PyKCS11.CKA_LABEL, "registry"),
             (PyKCS11.CKA_ENCRYPT, True), (PyKCS11.CKA_DECRYPT, True), (PyKCS11.CKA_SENSITIVE, True),
             (PyKCS11.CKA_EXTRACTABLE, False)],
            mecha=PyKCS11.Mechanism(PyKCS11.CKM_AES_KEY_GEN, None),
        )
        """,
    )
    module = softhsm_module()
    uri = f"pkcs11:token=vault;object=registry?module-path={module}"
    common = ["--policy", str(r.policy)]
    rotated = subprocess.run(
        [EXE, "registry", "rotate-key", "--new-key", uri, *common],
        env={**env, crypt.KEY_ENV: str(key)},
        capture_output=True,
        text=True,
        cwd=r.root,
    )
    assert rotated.returncode == 0 and "under the registry key pkcs11:registry" in rotated.stdout, (
        rotated.stderr
    )
    fetched = subprocess.run(
        [EXE, "fetch", "--model", r.name, "--env", "production", "--dest", "hsm", *common],
        env={**env, crypt.KEY_ENV: uri},
        capture_output=True,
        text=True,
        cwd=r.root,
    )
    assert fetched.returncode == 0 and root_digest(folder_files(r.root / "hsm")) == a, fetched.stderr
    assert PIN not in fetched.stderr + fetched.stdout + rotated.stderr + rotated.stdout
    wrong_pin = subprocess.run(
        [EXE, "fetch", "--model", r.name, "--env", "production", "--dest", "hsm2", *common],
        env={**env, crypt.KEY_ENV: uri, "MLOPS_GATES_PKCS11_PIN": "99999999"},
        capture_output=True,
        text=True,
        cwd=r.root,
    )
    assert wrong_pin.returncode == 2 and "could not be opened" in wrong_pin.stderr
    assert "99999999" not in wrong_pin.stderr and empty(r.root / "hsm2")


@pytest.mark.parametrize("size", [0, 5, crypt.SEGMENT, 2 * crypt.SEGMENT + 7])
def test_sealing_round_trips_and_a_cut_is_caught(tmp_path, size):
    src, sealed, back = tmp_path / "a", tmp_path / "a.sealed", tmp_path / "a.back"
    src.write_bytes(os.urandom(size))
    dek, ctx = crypt.new_data_key(), crypt.context("m", "sha256:" + "0" * 64, "files/a")
    crypt.seal(src, sealed, dek, ctx)
    crypt.unseal(sealed, back, dek, ctx)
    assert back.read_bytes() == src.read_bytes()
    segments = max(1, -(-size // crypt.SEGMENT))  # whole segments, the last perhaps short (or empty)
    assert sealed.stat().st_size == len(crypt.MAGIC) + 8 + size + crypt.TAG * segments
    with pytest.raises(GateError):
        crypt.unseal(sealed, back, dek, crypt.context("m", "sha256:" + "0" * 64, "files/b"))
    if size > crypt.SEGMENT:  # drop the last segment: the one before was not sealed as the last
        whole = sealed.read_bytes()
        sealed.write_bytes(whole[: len(crypt.MAGIC) + 8 + crypt.SEGMENT + crypt.TAG])
        with pytest.raises(Tampered):
            crypt.unseal(sealed, back, dek, ctx)
