"""Keys in hardware and in PKI: a real SoftHSM2 token made by the test (the key generated inside it) signs the
model and the decision through `mlops-gates sign`, with the PIN from the environment only; a private CA made by
the test certifies keys (a PEM key, the token's key); our verifier and the stock model_signing CLI accept the
same files, and refuse what they should."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlops_gates.errors import VerificationFailed
from mlops_gates.policy import Signer
from mlops_gates.signing.verify import verify
from tests.signing.test_keyless import release  # noqa: F401  (a model folder and a real decision)
from tests.signing.test_signing import keypair

PIN = "4711-secret-pin"
MODULES = ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"]
EXE = str(Path(sys.executable).parent / "mlops-gates")
STOCK = [sys.executable, "-m", "model_signing"]
IDENTITY = "release@acme.example"


def softhsm_module() -> str:
    found = next((m for m in MODULES if Path(m).is_file()), None)
    if found is None or shutil.which("softhsm2-util") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("softhsm2 is missing in CI: make test installs it (system-tools)")
        pytest.skip("softhsm2 is not installed (apt-get install softhsm2; make test does it as root)")
    return found


def softhsm_token(folder: Path, label: str, keygen: str) -> dict[str, str]:
    """A fresh SoftHSM2 token in `folder`, logged into as its user; `keygen` (Python, with `PyKCS11` and a
    read-write `session` at hand) makes its keys. Returns the environment that finds it (PIN included)."""
    module = softhsm_module()
    (folder / "tokens").mkdir()
    conf = folder / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", "12345678", "--pin", PIN],
        env=env,
        check=True,
        capture_output=True,
    )
    script = (
        textwrap.dedent(
            f"""
        import PyKCS11
        lib = PyKCS11.PyKCS11Lib(); lib.load({module!r})
        slot = next(s for s in lib.getSlotList(tokenPresent=True) if lib.getTokenInfo(s).label.strip() == {label!r})
        session = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
        session.login({PIN!r})
        """
        )
        + textwrap.dedent(keygen)
        + "\nsession.logout()\n"
    )
    subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True)
    return {**env, "MLOPS_GATES_PKCS11_PIN": PIN}


@pytest.fixture
def token(tmp_path: Path) -> dict[str, str]:
    """A fresh SoftHSM2 token 'mlops' with an EC P-256 key pair 'release' generated inside it; the
    environment a signing job would have (the PIN in MLOPS_GATES_PKCS11_PIN), and the key's URI."""
    env = softhsm_token(
        tmp_path,
        "mlops",
        """
        p256 = bytes.fromhex("06082a8648ce3d030107")
        common = [(PyKCS11.CKA_TOKEN, True), (PyKCS11.CKA_LABEL, "release"), (PyKCS11.CKA_ID, (1,)),
                  (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_EC)]
        session.generateKeyPair(
            [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PUBLIC_KEY), (PyKCS11.CKA_VERIFY, True), (PyKCS11.CKA_EC_PARAMS, p256), *common],
            [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY), (PyKCS11.CKA_SIGN, True), (PyKCS11.CKA_PRIVATE, True),
             (PyKCS11.CKA_SENSITIVE, True), (PyKCS11.CKA_EXTRACTABLE, False), *common],
            mecha=PyKCS11.Mechanism(PyKCS11.CKM_EC_KEY_PAIR_GEN, None),
        )
        """,
    )
    return {"env": env, "uri": f"pkcs11:token=mlops;object=release?module-path={softhsm_module()}"}


def run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env or dict(os.environ), capture_output=True, text=True)


def verify_cli(model: Path, ca: Path, identity: str) -> subprocess.CompletedProcess[str]:
    sig = str(model / "model.sig")
    return run([EXE, "verify", str(model), "--signature", sig, "--ca", str(ca), "--identity", identity])


def stock_verify(model: Path, *how: str) -> subprocess.CompletedProcess[str]:
    """The stock model_signing CLI; our decision attestation sits beside the signature, outside the model."""
    return run(
        [*STOCK, "verify", *how[:1], str(model), "--signature", str(model / "model.sig"), *how[1:]]
        + ["--ignore-paths", str(model / "model.decision.sig")]
    )


def test_a_key_held_in_a_softhsm2_token_signs_model_and_decision(token, release, tmp_path):  # noqa: F811
    model, decision = release
    pub = tmp_path / "token.pub.pem"
    res = run(
        [
            EXE,
            "sign",
            str(model),
            "--key",
            token["uri"],
            "--decision",
            str(decision),
            "--public-key-out",
            str(pub),
        ],
        token["env"],
    )
    assert res.returncode == 0, res.stderr
    assert PIN not in res.stdout + res.stderr
    v = verify(model, model / "model.sig", Signer(key=pub))
    assert v.decision is not None and v.decision["predicate"]["decision"] in ("PROMOTE", "HOLD", "REJECT")
    ok = stock_verify(model, "key", "--public_key", str(pub))
    assert ok.returncode == 0 and "Verification succeeded" in ok.stdout + ok.stderr, ok.stderr
    _, other = keypair(tmp_path)
    with pytest.raises(VerificationFailed):
        verify(model, model / "model.sig", Signer(key=other))

    # the PIN comes from the environment only, and never reaches the output
    wrong = run(
        [EXE, "sign", str(model), "--key", token["uri"]],
        {**token["env"], "MLOPS_GATES_PKCS11_PIN": "9999-wrong-pin"},
    )
    assert (
        wrong.returncode == 2
        and "could not be opened" in wrong.stderr
        and "9999-wrong-pin" not in wrong.stderr
    )
    inline = run([EXE, "sign", str(model), "--key", token["uri"] + f"&pin-value={PIN}"], token["env"])
    assert inline.returncode == 2 and "carries a PIN" in inline.stderr
    missing = {k: v for k, v in token["env"].items() if k != "MLOPS_GATES_PKCS11_PIN"}
    none = run([EXE, "sign", str(model), "--key", token["uri"]], missing)
    assert none.returncode == 2 and "MLOPS_GATES_PKCS11_PIN" in none.stderr
    absent = run(
        [EXE, "sign", str(model), "--key", token["uri"].replace("object=release", "object=nothing")],
        token["env"],
    )
    assert absent.returncode == 2 and "could not be opened" in absent.stderr
    for r in (wrong, inline, none, absent):
        assert PIN not in r.stdout + r.stderr and "Traceback" not in r.stderr


class CA:
    """A private CA made here: a root, an intermediate, and leaf certificates for signing keys."""

    def __init__(self, folder: Path, name: str = "Acme Model Signing"):
        from cryptography.hazmat.primitives.asymmetric import ec

        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.root_key, self.mid_key = (
            ec.generate_private_key(ec.SECP384R1()),
            ec.generate_private_key(ec.SECP256R1()),
        )
        self.root = self._cert(f"{name} Root", self.root_key.public_key(), self.root_key, None, ca=True)
        self.mid = self._cert(
            f"{name} Intermediate", self.mid_key.public_key(), self.root_key, self.root, ca=True
        )
        self.root_pem = self._write("root.pem", self.root)
        self.mid_pem = self._write("intermediate.pem", self.mid)

    def _cert(self, cn, public_key, signer_key, issuer, *, ca=False, usage=True, email=None):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        now = dt.datetime.now(dt.timezone.utc)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        b = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.subject if issuer else subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        )
        if issuer is not None:
            b = b.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()), critical=False
            )
        if ca:
            b = b.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
        else:
            b = b.add_extension(
                x509.KeyUsage(usage, False, not usage, False, False, False, False, False, False),
                critical=True,
            )
            if usage:
                b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            b = b.add_extension(
                x509.SubjectAlternativeName([x509.RFC822Name(email or IDENTITY)]), critical=False
            )
        return b.sign(signer_key, hashes.SHA256())

    def _write(self, name: str, cert) -> Path:
        from cryptography.hazmat.primitives import serialization

        path = self.folder / name
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    def issue(self, public_key_pem: Path, name: str, **kw) -> Path:
        from cryptography.hazmat.primitives import serialization

        key = serialization.load_pem_public_key(public_key_pem.read_bytes())
        return self._write(name, self._cert("release signer", key, self.mid_key, self.mid, **kw))


def test_certificates_from_a_private_ca_are_verified_by_us_and_by_model_signing(release, tmp_path):  # noqa: F811
    model, decision = release
    ca = CA(tmp_path / "ca")
    priv, pub = keypair(tmp_path)
    leaf = ca.issue(pub, "leaf.pem")
    signed = run(
        [
            EXE,
            "sign",
            str(model),
            "--key",
            str(priv),
            "--certificate",
            str(leaf),
            "--certificate-chain",
            str(ca.mid_pem),
            "--decision",
            str(decision),
        ]
    )
    assert signed.returncode == 0, signed.stderr
    v = verify(model, model / "model.sig", Signer(ca=ca.root_pem, identity=IDENTITY))
    assert v.decision is not None and "certificate chain to the private CA and identity" in v.checks[0]
    assert verify(
        model, model / "model.sig", Signer(ca=ca.root_pem, identity_regexp=r"release@acme\..*")
    ).checks
    ok = stock_verify(model, "certificate", "--certificate_chain", str(ca.root_pem))
    assert ok.returncode == 0 and "Verification succeeded" in ok.stdout + ok.stderr, ok.stderr
    cli = verify_cli(model, ca.root_pem, IDENTITY)
    assert cli.returncode == 0 and "the gate decided" in cli.stdout, cli.stderr

    def refused(check: str, signer: Signer) -> None:
        with pytest.raises(VerificationFailed) as info:
            verify(model, model / "model.sig", signer)
        assert info.value.check == check, info.value.render()

    refused("identity", Signer(ca=ca.root_pem, identity="mallory@acme.example"))
    refused("certificate", Signer(ca=CA(tmp_path / "other-ca", "Other").root_pem))  # another CA
    refused("certificate", Signer(ca=CA(tmp_path / "third").mid_pem))  # another CA's intermediate
    no = verify_cli(model, ca.root_pem, "x@y")
    assert no.returncode == 1 and no.stdout == "" and "FAILED" in no.stderr

    # a certificate that may not sign is refused when signing; one for another key too
    weak = ca.issue(pub, "weak.pem", usage=False)
    bad = run([EXE, "sign", str(model), "--key", str(priv), "--certificate", str(weak)])
    assert bad.returncode == 2 and "may not sign" in bad.stderr
    _, other = keypair(tmp_path / "other-ca")
    mismatch = run(
        [EXE, "sign", str(model), "--key", str(priv), "--certificate", str(ca.issue(other, "o.pem"))]
    )
    assert mismatch.returncode == 2 and "not for this key" in mismatch.stderr


def test_a_token_key_with_a_certificate_from_the_private_ca(token, release, tmp_path):  # noqa: F811
    model, decision = release
    ca = CA(tmp_path / "ca")
    pub = tmp_path / "token.pub.pem"
    first = run([EXE, "sign", str(model), "--key", token["uri"], "--public-key-out", str(pub)], token["env"])
    assert first.returncode == 0, first.stderr
    leaf = ca.issue(pub, "token-leaf.pem")
    res = run(
        [
            EXE,
            "sign",
            str(model),
            "--key",
            token["uri"],
            "--certificate",
            str(leaf),
            "--certificate-chain",
            str(ca.mid_pem),
            "--decision",
            str(decision),
        ],
        token["env"],
    )
    assert res.returncode == 0, res.stderr
    assert verify(model, model / "model.sig", Signer(ca=ca.root_pem, identity=IDENTITY)).decision is not None
    ok = stock_verify(model, "certificate", "--certificate_chain", str(ca.root_pem))
    assert ok.returncode == 0 and "Verification succeeded" in ok.stdout + ok.stderr, ok.stderr
