"""Keyless signing end to end against a fake Sigstore on loopback (OIDC issuer, Fulcio with embedded SCTs,
Rekor with inclusion proofs), through sigstore-python's unmodified signing path; the results verify with
`mlops-gates verify` and with the stock `model_signing` and `sigstore` command lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import binary_policy, cli_main, write_policy
from tests.fakes.sigstore import REQUEST_TOKEN, FakeSigstore

WORKFLOW = "https://github.com/acme/models/.github/workflows/release.yml@refs/heads/main"
CI_VARS = (
    "GITHUB_ACTIONS",
    "GITHUB_EVENT_NAME",
    "GITLAB_CI",
    "SIGSTORE_ID_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
)


@pytest.fixture
def sigstore(tmp_path, monkeypatch):
    for var in CI_VARS:
        monkeypatch.delenv(var, raising=False)
    with FakeSigstore() as fake:
        (tmp_path / "trust.json").write_text(json.dumps(fake.trust_config()))
        yield fake, tmp_path / "trust.json"


@pytest.fixture
def release(tmp_path, binary_case):
    """A model folder and a real decision about it."""
    from mlops_gates.evaluation import run

    folder, _ = binary_case
    model = tmp_path / "model"
    (model / "weights").mkdir(parents=True)
    (model / "weights" / "w.bin").write_bytes(bytes(range(256)) * 8)
    (model / "config.json").write_text('{"hidden": 8}')
    run(write_policy(folder / "gates.yml", binary_policy()), folder / "out", model_paths={"candidate": model})
    return model, folder / "out" / "decision.json"


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli_main(monkeypatch, *args)
    out, err = capsys.readouterr()
    return code, out, err


def test_github_actions_keyless_sign_then_verify_everywhere(sigstore, release, monkeypatch, capsys):
    fake, trust = sigstore
    model, decision = release
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", f"{fake.issuer}/actions-token?api-version=2.0")
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN)
    code, out, err = run_cli(
        monkeypatch, capsys, "sign", str(model), "--decision", str(decision), "--trust-config", str(trust)
    )
    assert code == 0, err
    assert REQUEST_TOKEN not in out + err
    # one short-lived certificate for both signatures; both statements are in the log
    assert len(fake.certificates) == 1 and len(fake.entries) == 2
    bundle = json.loads((model / "model.sig").read_text())
    assert bundle["verificationMaterial"]["certificate"] and bundle["verificationMaterial"]["tlogEntries"][0][
        "kindVersion"
    ] == {"kind": "dsse", "version": "0.0.1"}

    verify = ["verify", str(model), "--signature", str(model / "model.sig"), "--trust-config", str(trust)]
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        *verify,
        "--identity",
        WORKFLOW,
        "--issuer",
        fake.issuer,
        "--repository",
        "acme/models",
        "--ref",
        "refs/heads/main",
    )
    assert code == 0, err
    assert "certificate chain, transparency log and identity" in out and "the gate decided PROMOTE" in out
    code, _, err = run_cli(
        monkeypatch,
        capsys,
        *verify,
        "--identity-regexp",
        r"https://github\.com/acme/.*",
        "--issuer",
        fake.issuer,
    )
    assert code == 0, err
    code, _, err = run_cli(
        monkeypatch, capsys, *verify, "--identity", WORKFLOW.replace("main", "dev"), "--issuer", fake.issuer
    )
    assert code == 1 and "FAILED" in err and ": identity: " in err
    code, _, err = run_cli(monkeypatch, capsys, *verify, "--identity", WORKFLOW, "--issuer", "https://other")
    assert code == 1 and "FAILED" in err and ": identity: " in err
    code, _, err = run_cli(  # public-good Sigstore does not trust the fake
        monkeypatch,
        capsys,
        "verify",
        str(model),
        "--signature",
        str(model / "model.sig"),
        "--identity",
        WORKFLOW,
        "--issuer",
        fake.issuer,
    )
    assert code == 1 and "FAILED" in err

    # the stock tools accept the same files
    stock = subprocess.run(
        [
            sys.executable,
            "-m",
            "model_signing",
            "verify",
            "sigstore",
            str(model),
            "--signature",
            str(model / "model.sig"),
            "--trust_config",
            str(trust),
            "--identity",
            WORKFLOW,
            "--identity_provider",
            fake.issuer,
            "--ignore-paths",
            str(model / "model.decision.sig"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert stock.returncode == 0, stock.stdout + stock.stderr
    subject = json.loads(__import__("base64").b64decode(bundle["dsseEnvelope"]["payload"]))["subject"][0][
        "digest"
    ]["sha256"]
    sigstore_cli = Path(sys.executable).parent / "sigstore"
    stock = subprocess.run(
        [
            str(sigstore_cli),
            "--trust-config",
            str(trust),
            "verify",
            "identity",
            "--offline",
            "--bundle",
            str(model / "model.sig"),
            "--cert-identity",
            WORKFLOW,
            "--cert-oidc-issuer",
            fake.issuer,
            f"sha256:{subject}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert stock.returncode == 0, stock.stdout + stock.stderr

    (model / "config.json").write_text('{"hidden": 9}')
    code, _, err = run_cli(monkeypatch, capsys, *verify, "--identity", WORKFLOW, "--issuer", fake.issuer)
    assert code == 1 and "FAILED" in err and ": files: " in err


def test_gitlab_id_token_and_a_token_fulcio_refuses(sigstore, release, monkeypatch, capsys):
    fake, trust = sigstore
    model, _ = release
    identity = "https://gitlab.com/acme/models//.gitlab-ci.yml@refs/heads/main"
    monkeypatch.setenv("GITLAB_CI", "true")
    monkeypatch.setenv("SIGSTORE_ID_TOKEN", fake.token(sub=identity))
    code, _, err = run_cli(monkeypatch, capsys, "sign", str(model), "--trust-config", str(trust))
    assert code == 0, err
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        "verify",
        str(model),
        "--signature",
        str(model / "model.sig"),
        "--trust-config",
        str(trust),
        "--identity",
        identity,
        "--issuer",
        fake.issuer,
    )
    assert code == 0, err
    # a token the issuer did not sign: Fulcio refuses, the user is told, nothing is written
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    claims = jwt.decode(fake.token(sub=identity), options={"verify_signature": False})
    forged = jwt.encode(
        claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": "fake"}
    )
    (model / "model.sig").unlink()
    code, _, err = run_cli(
        monkeypatch, capsys, "sign", str(model), "--trust-config", str(trust), "--identity-token", forged
    )
    assert code == 2 and "Sigstore refused a signing certificate" in err and "Traceback" not in err
    assert not (model / "model.sig").exists()


def test_no_identity_token_says_what_to_do(sigstore, release, monkeypatch, capsys):
    _, trust = sigstore
    model, _ = release
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")
    code, _, err = run_cli(monkeypatch, capsys, "sign", str(model), "--trust-config", str(trust))
    assert code == 2 and "id-token: write" in err and "fork" in err and "Traceback" not in err
    monkeypatch.delenv("GITHUB_ACTIONS")
    monkeypatch.setenv("GITLAB_CI", "true")
    code, _, err = run_cli(monkeypatch, capsys, "sign", str(model), "--trust-config", str(trust))
    assert code == 2 and "id_tokens" in err
    code, _, err = run_cli(
        monkeypatch, capsys, "sign", str(model), "--identity-token", "not-a-jwt", "--trust-config", str(trust)
    )
    assert code == 2 and "identity token is not usable" in err
