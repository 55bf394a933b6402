"""Signing and verifying models and decisions: key round trips, tampering of every kind, interoperability
with the stock model_signing CLI, and real public-good Sigstore bundles verified offline."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_gates.errors import GateError, VerificationFailed
from mlops_gates.policy import Signer
from mlops_gates.signing.envelope import PrivateKey
from mlops_gates.signing.sign import sign
from mlops_gates.signing.verify import verify
from tests.conftest import cli_main

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "assets" / "sigstore"
MT = FIXTURES / "real" / "model-transparency-v1.1.0-sigstore"
SP = FIXTURES / "real" / "sigstore-python"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
WHEEL_SAN = "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
BEACON_SAN = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/"
    "extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)


def keypair(folder: Path, curve: str = "secp256r1") -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1() if curve == "secp256r1" else ec.SECP384R1())
    priv, pub = folder / f"{curve}.pem", folder / f"{curve}.pub.pem"
    priv.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return priv, pub


@pytest.fixture
def model(tmp_path: Path) -> Path:
    m = tmp_path / "model"
    (m / "weights").mkdir(parents=True)
    (m / "weights" / "w.bin").write_bytes(bytes(range(256)) * 10)
    (m / "config.json").write_text('{"hidden": 8}')
    (m / ".git").mkdir()
    (m / ".git" / "HEAD").write_text("ref: x")  # ignored, as model-signing ignores git paths
    return m


@pytest.mark.parametrize("curve", ["secp256r1", "secp384r1"])
def test_key_round_trip_and_every_tampering(model, tmp_path, curve):
    priv, pub = keypair(tmp_path, curve)
    signed = sign(model, PrivateKey.load(priv))
    assert signed.files == 2 and signed.signature == model / "model.sig"
    ok = verify(model, signed.signature, Signer(key=pub))
    assert ok.statement["predicate"]["resources"][0]["name"] == "config.json"

    def fails(check: str, signer: Signer | None = None) -> str:
        with pytest.raises(VerificationFailed) as info:
            verify(model, signed.signature, signer or Signer(key=pub))
        assert info.value.check == check, info.value.render()
        return info.value.render()

    w = model / "weights" / "w.bin"
    original = w.read_bytes()
    w.write_bytes(bytes([original[0] ^ 1]) + original[1:])
    assert "changed since signing: weights/w.bin" in fails("files")
    w.write_bytes(original)
    (model / "extra.txt").write_text("x")
    assert "present but not signed: extra.txt" in fails("files")
    (model / "extra.txt").unlink()
    (model / "config.json").rename(model / "config2.json")
    assert "signed but missing: config.json" in fails("files")
    (model / "config2.json").rename(model / "config.json")
    (model / "config.json").unlink()
    assert "signed but missing: config.json" in fails("files")
    (model / "config.json").write_text('{"hidden": 8}')
    other_dir = tmp_path / "other-key"
    other_dir.mkdir()
    _, other = keypair(other_dir, curve)
    fails("key", Signer(key=other))
    bundle = json.loads(signed.signature.read_text())
    bundle["verificationMaterial"]["publicKey"]["hint"] = ""
    statement = json.loads(__import__("base64").b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["resources"][0]["digest"] = "0" * 64
    bundle["dsseEnvelope"]["payload"] = (
        __import__("base64").b64encode(json.dumps(statement).encode()).decode()
    )
    signed.signature.write_text(json.dumps(bundle))
    fails("signature")
    sign(model, PrivateKey.load(priv))  # signed again, the untouched model verifies
    assert verify(model, signed.signature, Signer(key=pub)).checks


def test_decision_attestation(model, tmp_path, binary_case):
    from mlops_gates.evaluation import run
    from tests.conftest import binary_policy, write_policy

    folder, _ = binary_case
    out = run(
        write_policy(folder / "gates.yml", binary_policy()), folder / "out", model_paths={"candidate": model}
    )
    priv, pub = keypair(tmp_path)
    signed = sign(model, PrivateKey.load(priv), decision=folder / "out" / "decision.json")
    assert signed.decision == model / "model.decision.sig"
    v = verify(model, signed.signature, Signer(key=pub))
    pred = v.decision["predicate"]  # type: ignore[index]
    assert (
        pred["decision"] == out.record["decision"]
        and pred["policy"]["digest"] == out.record["inputs"]["policy"]["digest"]
    )
    assert pred["gates"][0]["metrics"][0]["threshold"] == 0.6
    import jsonschema

    from mlops_gates.schemas import schema_file

    jsonschema.Draft202012Validator(schema_file("decision-attestation.v1.schema.json")).validate(v.decision)
    # the decision about another model does not transfer to this one
    other = tmp_path / "other"
    other.mkdir()
    (other / "w.bin").write_bytes(b"different")
    with pytest.raises(GateError, match="refused: the decision is about the candidate sha256:"):
        sign(other, PrivateKey.load(priv), decision=folder / "out" / "decision.json")
    run(folder / "gates.yml", folder / "out-other", model_paths={"candidate": other})
    sign(other, PrivateKey.load(priv), decision=folder / "out-other" / "decision.json")
    shutil.copy(other / "model.decision.sig", model / "model.decision.sig")
    with pytest.raises(VerificationFailed) as info:
        verify(model, signed.signature, Signer(key=pub))
    assert info.value.check == "decision subject"


def test_interoperates_with_the_model_signing_cli(model, tmp_path):
    priv, pub = keypair(tmp_path)
    sign(model, PrivateKey.load(priv))
    stock = [sys.executable, "-m", "model_signing"]
    res = subprocess.run(
        [
            *stock,
            "verify",
            "key",
            str(model),
            "--signature",
            str(model / "model.sig"),
            "--public_key",
            str(pub),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0 and "Verification succeeded" in res.stdout + res.stderr, res.stderr
    (model / "model.sig").unlink()
    res = subprocess.run(
        [
            *stock,
            "sign",
            "key",
            str(model),
            "--private_key",
            str(priv),
            "--signature",
            str(model / "model.sig"),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert verify(model, model / "model.sig", Signer(key=pub)).checks
    (model / "config.json").write_text("tampered")
    res = subprocess.run(
        [
            *stock,
            "verify",
            "key",
            str(model),
            "--signature",
            str(model / "model.sig"),
            "--public_key",
            str(pub),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode != 0  # the stock tool agrees it is tampered
    with pytest.raises(VerificationFailed, match="changed since signing: config.json"):
        verify(model, model / "model.sig", Signer(key=pub))


def test_real_production_model_signing_bundle(tmp_path):
    ibm = Signer(identity="stefanb@us.ibm.com", issuer="https://sigstore.verify.ibm.com/oauth2")
    assert verify(MT, MT / "model.sig", ibm, ignore=["ignore-me"]).checks
    with pytest.raises(VerificationFailed) as info:
        verify(
            MT,
            MT / "model.sig",
            Signer(identity="someone@example.com", issuer=ibm.issuer),
            ignore=["ignore-me"],
        )
    assert info.value.check == "identity"
    copy = tmp_path / "v1.1.0-sigstore"
    shutil.copytree(MT, copy)
    (copy / "signme-1").chmod(0o644)
    (copy / "signme-1").write_bytes(b"tampered")
    with pytest.raises(VerificationFailed, match="changed since signing: signme-1"):
        verify(copy, copy / "model.sig", ibm, ignore=["ignore-me"])
    with pytest.raises(VerificationFailed, match="present but not signed: ignore-me"):
        verify(MT, MT / "model.sig", ibm)  # the signer left ignore-me out; so must the verifier


def test_real_github_actions_and_staging_bundles():
    gh = Signer(
        identity=WHEEL_SAN, issuer=GITHUB_ISSUER, repository="trailofbits/rfc8785.py", ref="refs/tags/v0.1.2"
    )
    wheel, bundle = SP / "bundle_v3_github.whl", SP / "bundle_v3_github.whl.sigstore"
    assert verify(wheel, bundle, gh).checks[-1] == "file digest"
    assert verify(
        wheel, bundle, Signer(identity_regexp=r"https://github\.com/trailofbits/.*", issuer=GITHUB_ISSUER)
    ).checks
    for wrong in (
        Signer(identity=WHEEL_SAN, issuer=GITHUB_ISSUER, ref="refs/tags/v9"),
        Signer(identity_regexp=r"https://github\.com/sigstore/.*", issuer=GITHUB_ISSUER),
    ):
        with pytest.raises(VerificationFailed) as info:
            verify(wheel, bundle, wrong)
        assert info.value.check == "identity"
    with pytest.raises(VerificationFailed):
        verify(SP / "bundle_v3.txt", bundle, gh)  # another file
    staging = Signer(
        identity=BEACON_SAN,
        issuer=GITHUB_ISSUER,
        trust_root=FIXTURES / "trust" / "staging_trusted_root.sigstore-4.5.1.json",
    )
    dsse = SP / "a.dsse.staging-rekor-v2.txt.sigstore.json"
    subject = Path(
        "sha256:a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf"
    )  # the artifact the statement names
    assert verify(subject, dsse, staging).checks[-1] == "subject digest"
    with pytest.raises(VerificationFailed, match="no subject of the statement"):
        verify(SP / "a.dsse.staging-rekor-v2.txt", dsse, staging)
    with pytest.raises(VerificationFailed):
        verify(
            subject, dsse, Signer(identity=BEACON_SAN, issuer=GITHUB_ISSUER)
        )  # production root: not trusted


def test_cli_sign_and_verify_exit_codes_and_the_key_stays_secret(model, tmp_path, capsys, monkeypatch):

    priv, pub = keypair(tmp_path)

    def main(*args: str) -> int:
        return cli_main(monkeypatch, *args)

    monkeypatch.setenv("MODEL_KEY", priv.read_text())
    assert main("sign", str(model), "--key-env", "MODEL_KEY") == 0
    assert main("verify", str(model), "--signature", str(model / "model.sig"), "--key", str(pub)) == 0
    out = capsys.readouterr()
    assert "PRIVATE KEY" not in out.out + out.err and "ok  signature" in out.out
    (model / "config.json").write_text("x")
    assert main("verify", str(model), "--signature", str(model / "model.sig"), "--key", str(pub)) == 1
    assert "FAILED" in capsys.readouterr().err
    assert (
        main("verify", str(model), "--signature", str(model / "model.sig")) == 2
    )  # neither key nor identity
    for var in ("GITHUB_ACTIONS", "GITLAB_CI", "SIGSTORE_ID_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_URL"):
        monkeypatch.delenv(var, raising=False)
    assert main("sign", str(model)) == 2  # no key: keyless, and outside CI there is no identity token
    assert "no identity token for keyless signing" in capsys.readouterr().err
    with pytest.raises(GateError, match="not an ECDSA P-256 or P-384 key"):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519

        bad = tmp_path / "ed.pem"
        bad.write_bytes(
            ed25519.Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        PrivateKey.load(bad)
