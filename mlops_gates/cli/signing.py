"""Sign a model folder (and the decision about it); verify a signature before trusting a model."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mlops_gates.cli.options import (
    ignore_option,
    trust_config_option,
)
from mlops_gates.errors import ExitCode


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
    "key_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="ECDSA P-256/P-384 private key, PEM.",
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
@ignore_option
def sign_cmd(
    model_dir: Path,
    signature: Path | None,
    key_path: Path | None,
    key_env: str | None,
    decision: Path | None,
    identity_token: str | None,
    trust_config: Path | None,
    ignore: tuple[str, ...],
) -> None:
    """Sign MODEL_DIR in the OpenSSF model-signing v1.0 format, and optionally the gate's decision about it.

    With --key or --key-env it signs with that key; otherwise keyless, with Sigstore and the CI identity."""
    from mlops_gates.signing.sign import BundleSigner, sign

    signer: BundleSigner
    if key_path or key_env:
        from mlops_gates.signing.envelope import PrivateKey

        signer = PrivateKey.load(key_path) if key_path else PrivateKey.load(env=key_env)
    else:
        from mlops_gates.signing.keyless import KeylessSigner, find_identity_token

        signer = KeylessSigner(find_identity_token(identity_token), trust_config)
    s = sign(model_dir, signer, signature=signature, decision=decision, ignore=ignore)
    click.echo(
        f"signed {s.files} files of {model_dir} (model-signing subject sha256:{s.subject_digest}) -> {s.signature}"
    )
    if s.decision:
        click.echo(f"signed the decision about it -> {s.decision}")
    click.echo(
        f"digest sha256:{s.root_digest}"
    )  # the root digest: what register and promote call the version


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
@ignore_option
def verify_cmd(
    path: Path,
    signature: Path,
    key_path: Path | None,
    identity: str | None,
    identity_regexp: str | None,
    issuer: str | None,
    trust_root: Path | None,
    trust_config: Path | None,
    repository: str | None,
    ref: str | None,
    decision: Path | None,
    ignore: tuple[str, ...],
) -> None:
    """Verify a model's signature (and its decision attestation). Exit 0 only when every check holds.

    PATH is the model folder, a signed file, or sha256:HEX for an artifact known by its digest.
    """
    from mlops_gates.errors import VerificationFailed
    from mlops_gates.policy import Signer
    from mlops_gates.signing.verify import verify

    if bool(key_path) == bool(identity or identity_regexp):
        raise click.UsageError("pass either --key, or --identity/--identity-regexp with --issuer")
    try:
        v = verify(
            path,
            signature,
            Signer(key_path, identity, identity_regexp, issuer, trust_root or trust_config, repository, ref),
            ignore=ignore,
            decision=decision,
        )
    except VerificationFailed as exc:
        click.echo(f"FAILED {exc.render()}", err=True)
        sys.exit(ExitCode.BLOCKED)
    for check in v.checks:
        click.echo(f"ok  {check}")
    click.echo(
        f"verified {path}"
        + (f"; the gate decided {v.decision['predicate']['decision']}" if v.decision else "")
    )
