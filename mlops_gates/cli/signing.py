"""Sign a model folder (and the decision about it); verify a signature before trusting a model."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from mlops_gates.cli.options import (
    ignore_option,
    trust_config_option,
)
from mlops_gates.errors import ExitCode, GateError

F = TypeVar("F", bound=Any)

if TYPE_CHECKING:
    from mlops_gates.policy import Signer
    from mlops_gates.signing.sign import BundleSigner
    from mlops_gates.signing.verify import Verified


RESIDENCY = click.option(
    "--residency-policy",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="A policy whose residency.signing is private: keyless signing on public-good Sigstore is refused.",
)


@click.command("sign")
@click.argument("model_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--signature",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Default: MODEL_DIR/model.sig.",
)
@click.option(
    "--key",
    "key_ref",
    default=None,
    metavar="PATH|URI",
    help="ECDSA P-256/P-384 private key: a PEM file, or a PKCS#11 URI (pkcs11:token=...;object=...?module-path=...) "
    "whose PIN is in MLOPS_GATES_PKCS11_PIN.",
)
@click.option(
    "--certificate",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The key's certificate from a private CA (PEM): the signature carries it and its chain.",
)
@click.option(
    "--certificate-chain",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The CA certificates between it and the root (PEM).",
)
@click.option(
    "--public-key-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the signing key's public half here (PEM), for the policy's signers.",
)
@click.option(
    "--key-env",
    default=None,
    metavar="VAR",
    help="Environment variable holding the PEM private key (never printed).",
)
@click.option(
    "--decision",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also sign this decision.json about the model (written to model.decision.sig beside the signature).",
)
@click.option(
    "--identity-token",
    default=None,
    help="Keyless: an OIDC token (default: SIGSTORE_ID_TOKEN, or GitHub Actions' id-token endpoint).",
)
@trust_config_option
@RESIDENCY
@ignore_option
def sign_cmd(
    model_dir: Path,
    signature: Path | None,
    key_ref: str | None,
    certificate: Path | None,
    certificate_chain: Path | None,
    public_key_out: Path | None,
    key_env: str | None,
    decision: Path | None,
    identity_token: str | None,
    trust_config: Path | None,
    residency_policy: Path | None,
    ignore: tuple[str, ...],
) -> None:
    """Sign MODEL_DIR in the OpenSSF model-signing v1.0 format, and optionally the gate's decision about it.

    With --key or --key-env it signs with that key (with --certificate, as the holder of a private CA's
    certificate); otherwise keyless, with Sigstore and the CI identity."""
    from mlops_gates.signing.sign import sign

    signer = make_signer(
        key_ref,
        key_env,
        certificate,
        certificate_chain,
        identity_token,
        trust_config,
        private_signing(residency_policy),
    )
    if public_key_out is not None:
        from mlops_gates.signing.envelope import public_pem

        public_key = getattr(signer, "public_key", None)  # keyless signers have no lasting key
        if public_key is None:
            raise click.UsageError("--public-key-out needs a key (--key or --key-env)")
        public_key_out.write_bytes(public_pem(public_key()))
    s = sign(model_dir, signer, signature=signature, decision=decision, ignore=ignore)
    click.echo(
        f"signed {s.files} files of {model_dir} (model-signing subject sha256:{s.subject_digest}) -> {s.signature}"
    )
    if s.decision:
        click.echo(f"signed the decision about it -> {s.decision}")
    click.echo(
        f"digest sha256:{s.root_digest}"
    )  # the root digest: what register and promote call the version


def private_signing(policy_path: Path | None) -> bool:
    if policy_path is None:
        return False
    from mlops_gates import policy

    r = policy.load(policy_path).residency
    return r is not None and r.signing == "private"


def key_options(f: F) -> F:
    """The signing key options of `sign`, for the other commands that sign (attest-training, waiver create)."""
    for opt in reversed(
        [
            click.option("--key", "key_ref", default=None, metavar="PATH|URI", help="As for sign."),
            click.option("--key-env", default=None, metavar="VAR", help="As for sign."),
            click.option(
                "--certificate", type=click.Path(dir_okay=False, path_type=Path), help="As for sign."
            ),
            click.option(
                "--certificate-chain", type=click.Path(dir_okay=False, path_type=Path), help="As for sign."
            ),
            click.option("--identity-token", default=None, help="As for sign (keyless)."),
            trust_config_option,
            RESIDENCY,
        ]
    ):
        f = opt(f)
    return f


def signer_of(keys: dict[str, Any], private: bool = False) -> BundleSigner:
    """The signer that key_options' values name; `private`: never public-good Sigstore."""
    return make_signer(
        keys["key_ref"],
        keys["key_env"],
        keys["certificate"],
        keys["certificate_chain"],
        keys["identity_token"],
        keys["trust_config"],
        private or private_signing(keys["residency_policy"]),
    )


def make_signer(
    key_ref: str | None,
    key_env: str | None,
    certificate: Path | None,
    chain: Path | None,
    identity_token: str | None,
    trust_config: Path | None,
    private: bool = False,
) -> BundleSigner:
    """The key the options name (a PEM file or variable, a PKCS#11 token), perhaps with its certificate; or
    Sigstore keyless (`private`: only a private instance, named by --trust-config)."""
    if not (key_ref or key_env):
        if certificate or chain:
            raise click.UsageError("--certificate needs the key it certifies (--key or --key-env)")
        if private and trust_config is None:
            raise GateError(
                "refused: the policy's residency keeps signatures off public-good Sigstore",
                hint="sign with --trust-config (your Sigstore's client trust configuration), or with a key",
            )
        from mlops_gates.signing.keyless import KeylessSigner, find_identity_token

        return KeylessSigner(find_identity_token(identity_token), trust_config)
    from mlops_gates.signing.envelope import PrivateKey
    from mlops_gates.signing.pkcs11 import Pkcs11Key, is_pkcs11

    key: PrivateKey | Pkcs11Key
    if key_ref and is_pkcs11(key_ref):
        key = Pkcs11Key.open(key_ref)
    else:
        key = PrivateKey.load(Path(key_ref)) if key_ref else PrivateKey.load(env=key_env)
    if certificate is None:
        if chain is not None:
            raise click.UsageError("--certificate-chain goes with --certificate")
        return key
    from mlops_gates.signing.x509 import CertifiedKey

    return CertifiedKey.load(key, certificate, chain)


@click.command("verify")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--signature", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--key",
    "key_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The signer's public key, PEM.",
)
@click.option(
    "--ca",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A private CA's certificates (PEM): the signing certificate must chain to them.",
)
@click.option("--identity", default=None, help="The signer's exact identity (certificate SAN).")
@click.option(
    "--identity-regexp", default=None, help="A regular expression the signer's identity must fully match."
)
@click.option("--issuer", default=None, help="The identity's OIDC issuer.")
@click.option(
    "--trust-root",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Sigstore trusted root JSON (default: public-good Sigstore's, embedded; no network).",
)
@trust_config_option
@click.option(
    "--repository", default=None, help="GitHub Actions identities: the OWNER/REPO that must have signed."
)
@click.option(
    "--ref", default=None, help="GitHub Actions identities: the ref (refs/tags/v1) that must have signed."
)
@click.option(
    "--decision",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The decision attestation (default: model.decision.sig beside the signature, when present).",
)
@click.option(
    "--require-provenance",
    "provenance",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The model's training attestation: it must verify with the same signer, be about this model, and be "
    "the one the decision linked; the chain model -> training -> data is printed.",
)
@ignore_option
def verify_cmd(
    path: Path,
    signature: Path,
    key_path: Path | None,
    ca: Path | None,
    identity: str | None,
    identity_regexp: str | None,
    issuer: str | None,
    trust_root: Path | None,
    trust_config: Path | None,
    repository: str | None,
    ref: str | None,
    decision: Path | None,
    provenance: Path | None,
    ignore: tuple[str, ...],
) -> None:
    """Verify a model's signature (and its decision attestation). Exit 0 only when every check holds.

    PATH is the model folder, a signed file, or sha256:HEX for an artifact known by its digest.
    """
    from mlops_gates.errors import VerificationFailed
    from mlops_gates.policy import Signer
    from mlops_gates.signing.verify import verify

    if ca is None and bool(key_path) == bool(identity or identity_regexp):
        raise click.UsageError(
            "pass either --key, --ca (perhaps with --identity), or --identity/--identity-regexp with --issuer"
        )
    if ca is not None and (key_path or issuer):
        raise click.UsageError("--ca takes no --key or --issuer: the certificate carries the key")
    signer = Signer(
        key_path, identity, identity_regexp, issuer, trust_root or trust_config, repository, ref, ca
    )
    try:
        v = verify(path, signature, signer, ignore=ignore, decision=decision)
        chain = _provenance(provenance, signer, v) if provenance else []
    except VerificationFailed as exc:
        click.echo(f"FAILED {exc.render()}", err=True)
        sys.exit(ExitCode.BLOCKED)
    for check in v.checks:
        click.echo(f"ok  {check}")
    for link in chain:
        click.echo(f"    {link}")
    click.echo(
        f"verified {path}"
        + (f"; the gate decided {v.decision['predicate']['decision']}" if v.decision else "")
    )


def _provenance(path: Path, signer: Signer, v: Verified) -> list[str]:
    from mlops_gates.errors import VerificationFailed
    from mlops_gates.signing.provenance import check_chain
    from mlops_gates.signing.verify import verify_statement

    if v.root_digest is None:
        raise VerificationFailed("provenance", "a training attestation is about a model folder", str(path))
    chain = check_chain(path, verify_statement(path, signer), v.root_digest, v.decision)
    linked = ", the one the decision linked" if v.decision else ""
    v.checks.append(f"training attestation by the same signer, about this model{linked}")
    return chain
