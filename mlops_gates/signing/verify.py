"""Verify a model's signature and the gate's decision attestation, offline: with a public key, or with a
Sigstore identity against a trust root. Checks also what sigstore's DSSE verification leaves to the caller:
payload type, predicate type, and subjects equal to the digests of the files on disk."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_gates.digest import hex_of, sha256_bytes, sha256_file
from mlops_gates.errors import GateError, VerificationFailed
from mlops_gates.policy import Signer
from mlops_gates.signing.envelope import load_public_key, read_bundle, verify_with_key
from mlops_gates.signing.statements import (
    DECISION_FILE,
    DECISION_PREDICATE,
    MODEL_PREDICATE,
    PAYLOAD_TYPE,
    STATEMENT_TYPE,
    Manifest,
    candidate_problem,
    manifest,
)


@dataclass
class Verified:
    checks: list[str] = field(default_factory=list)
    statement: dict[str, Any] = field(default_factory=dict)
    decision: dict[str, Any] | None = None
    root_digest: str | None = None  # a model folder's: over its files' names and digests (hex)


class _SanRegexp:
    """A sigstore verification policy: some SAN of the certificate fully matches the regular expression."""

    def __init__(self, pattern: str):
        self.pattern = re.compile(pattern)

    def verify(self, cert: Any) -> None:
        from cryptography import x509
        from sigstore.verify.policy import VerificationError

        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            raise VerificationError("the certificate has no subject alternative name") from None
        names = san.get_values_for_type(x509.RFC822Name) + san.get_values_for_type(
            x509.UniformResourceIdentifier
        )
        if not any(self.pattern.fullmatch(n) for n in names):
            raise VerificationError(f"no SAN matches {self.pattern.pattern}; actual SANs: {names}")


def _policy(s: Signer) -> Any:
    from sigstore.verify import policy

    if not s.issuer:
        raise GateError(
            "an identity needs its issuer",
            hint="add --issuer (GitHub Actions: https://token.actions.githubusercontent.com)",
        )
    parts: list[Any] = (
        [policy.Identity(identity=s.identity, issuer=s.issuer)]
        if s.identity
        else [_SanRegexp(s.identity_regexp or ""), policy.OIDCIssuer(s.issuer)]
    )
    if s.repository:
        parts.append(policy.GitHubWorkflowRepository(s.repository))
    if s.ref:
        parts.append(policy.GitHubWorkflowRef(s.ref))
    return policy.AllOf(parts)


def _trusted_root(path: Path) -> Any:
    """A trusted root file, or the one inside a client trust configuration (a private deployment's)."""
    from sigstore.models import ClientTrustConfig, TrustedRoot

    try:
        text = path.read_text()
        if "clienttrustconfig" in str(json.loads(text).get("mediaType", "")):
            return ClientTrustConfig.from_json(text).trusted_root
        return TrustedRoot.from_file(str(path))
    except (OSError, ValueError) as exc:
        raise GateError(
            f"not a readable Sigstore trusted root or client trust configuration ({exc})",
            where=str(path),
            hint="pass the trusted_root.json (or the client trust configuration) of the Sigstore that signed",
        ) from None


def _sigstore(bundle_path: Path, s: Signer, artifact: Path | None) -> tuple[str, bytes] | None:
    """Sigstore verification (certificate chain, transparency log, identity); (type, payload) for DSSE bundles."""
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import Bundle
    from sigstore.verify import Verifier
    from sigstore.verify.policy import VerificationError

    where = str(bundle_path)
    try:
        bundle = Bundle.from_json(bundle_path.read_bytes())
    except Exception as exc:
        raise VerificationFailed(
            "bundle", f"not a Sigstore bundle with a certificate ({exc})", where
        ) from None
    try:
        verifier = (
            Verifier(trusted_root=_trusted_root(s.trust_root))
            if s.trust_root
            else Verifier.production(offline=True)
        )
        # sigstore keeps DSSE and message-signature bundles apart in this attribute only
        if bundle._dsse_envelope is not None:
            return verifier.verify_dsse(bundle, _policy(s))
        if artifact is None or not artifact.is_file():
            raise VerificationFailed("bundle", "a message signature signs one file; pass that file", where)
        verifier.verify_artifact(artifact.read_bytes(), bundle, _policy(s))
        return None
    except VerificationError as exc:
        text = str(exc)
        check = (
            "identity"
            if "SAN" in text or "does not match" in text or "extension" in text.lower()
            else "signature"
        )
        raise VerificationFailed(check, text, where) from None
    except SigstoreError as exc:
        raise VerificationFailed("signature", str(exc), where) from None


def _statement(ptype: str, payload: bytes, where: str) -> dict[str, Any]:
    if ptype != PAYLOAD_TYPE:
        raise VerificationFailed("payload type", f"{ptype!r}, expected {PAYLOAD_TYPE!r}", where)
    try:
        st = json.loads(payload)
    except ValueError:
        raise VerificationFailed("payload", "not JSON", where) from None
    if not isinstance(st, dict) or st.get("_type") != STATEMENT_TYPE:
        raise VerificationFailed(
            "statement",
            f"not an in-toto Statement v1 ({st.get('_type') if isinstance(st, dict) else '?'})",
            where,
        )
    return st


def _check_files(st: dict[str, Any], m: Manifest, where: str) -> None:
    signed = {r["name"]: r["digest"] for r in st["predicate"]["resources"]}
    missing = sorted(set(signed) - set(m.files))
    extra = sorted(set(m.files) - set(signed))
    changed = sorted(n for n in set(signed) & set(m.files) if signed[n] != m.files[n])
    if missing:
        raise VerificationFailed("files", f"signed but missing: {', '.join(missing)}", where)
    if extra:
        raise VerificationFailed("files", f"present but not signed: {', '.join(extra)}", where)
    if changed:
        raise VerificationFailed("files", f"changed since signing: {', '.join(changed)}", where)
    subject = st["subject"][0]["digest"].get("sha256") if st.get("subject") else None
    if subject != m.subject_digest:
        raise VerificationFailed("subject", "the statement's subject is not the digest of these files", where)


def _open(bundle_path: Path, s: Signer, artifact: Path | None) -> tuple[str, bytes] | None:
    if s.key is not None:
        return verify_with_key(read_bundle(bundle_path), load_public_key(s.key), str(bundle_path))
    if s.ca is not None:
        from mlops_gates.signing.x509 import verify_with_certificates

        bundle = read_bundle(bundle_path)
        return verify_with_certificates(bundle, s.ca, s.identity, s.identity_regexp, str(bundle_path))
    read_bundle(bundle_path)  # a clear error for a missing or non-JSON file
    return _sigstore(bundle_path, s, artifact)


def verify(
    path: Path,
    signature: Path,
    signer: Signer,
    *,
    ignore: list[str] | tuple[str, ...] = (),
    decision: Path | None = None,
) -> Verified:
    """Every check, in order; the first that fails raises VerificationFailed naming it. A bundle or statement
    of the wrong shape (a field of another JSON type, a list where an object belongs) fails verification with
    what was wrong; it never escapes as a crash, and never passes."""
    try:
        return _verify(path, signature, signer, ignore, decision)
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        what = f"{type(exc).__name__}: {exc}"[:200]
        raise VerificationFailed(
            "bundle", f"malformed signature or statement ({what})", str(signature)
        ) from None


def _checked(s: Signer) -> str:
    if s.key:
        return "signature"
    if s.ca:
        named = " and identity" if s.identity or s.identity_regexp else ""
        return f"signature, certificate chain to the private CA{named}"
    return "signature, certificate chain, transparency log and identity"


def _verify(
    path: Path,
    signature: Path,
    signer: Signer,
    ignore: list[str] | tuple[str, ...],
    decision: Path | None,
) -> Verified:
    where = str(signature)
    out = Verified()
    opened = _open(signature, signer, path)
    out.checks.append(_checked(signer))
    if opened is None:  # a message signature over one file, checked by sigstore against that file
        out.checks.append("file digest")
        return out
    st = _statement(*opened, where)
    out.statement = st
    out.checks.append("payload and statement type")
    if st.get("predicateType") == MODEL_PREDICATE:
        if not path.is_dir():
            raise VerificationFailed(
                "files", "a model-signing signature covers a folder; pass the model folder", str(path)
            )
        decision_path = decision or signature.parent / DECISION_FILE
        try:
            m = manifest(path, [*ignore, str(signature), str(decision_path)])
        except GateError as exc:  # a symbolic link added to the folder, for one: not what was signed
            raise VerificationFailed("files", exc.message, str(path)) from None
        _check_files(st, m, where)
        out.root_digest = m.root_digest
        out.checks.append(f"{len(m.files)} files: none missing, none extra, none changed; subject digest")
        if decision is not None or decision_path.is_file():
            out.decision = _verify_decision(decision_path, signer, m, opened[1])
            out.checks.append(
                f"decision attestation ({out.decision['predicate']['decision']}) about exactly these files"
            )
        return out
    digest = str(path).removeprefix("sha256:") if str(path).startswith("sha256:") else None
    if digest is None and path.is_file():
        digest = hex_of(sha256_file(path))
    if digest is not None:  # any other in-toto statement: one of its subjects must be this artifact
        if not any(s_.get("digest", {}).get("sha256") == digest for s_ in st.get("subject", [])):
            raise VerificationFailed("subject", f"no subject of the statement is sha256:{digest}", where)
        out.checks.append("subject digest")
        return out
    raise VerificationFailed("predicate type", f"{st.get('predicateType')!r} is not a model signature", where)


def verify_statement(bundle_path: Path, signer: Signer) -> dict[str, Any]:
    """Any signed in-toto statement (a training attestation, say) by this signer; its statement, unchecked
    beyond the signature and the statement type."""
    try:
        opened = _open(bundle_path, signer, None)
        if opened is None:
            raise VerificationFailed("bundle", "not a DSSE statement", str(bundle_path))
        return _statement(*opened, str(bundle_path))
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        what = f"{type(exc).__name__}: {exc}"[:200]
        raise VerificationFailed(
            "bundle", f"malformed signature or statement ({what})", str(bundle_path)
        ) from None


def _verify_decision(path: Path, signer: Signer, m: Manifest, model_payload: bytes) -> dict[str, Any]:
    where = str(path)
    opened = _open(path, signer, None)
    if opened is None:
        raise VerificationFailed("decision", "the decision attestation is not a DSSE statement", where)
    st = _statement(*opened, where)
    if st.get("predicateType") != DECISION_PREDICATE:
        raise VerificationFailed(
            "decision predicate type", f"{st.get('predicateType')!r}, expected {DECISION_PREDICATE!r}", where
        )
    want = {m.root_digest, hex_of(sha256_bytes(model_payload))}
    got = {s_.get("digest", {}).get("sha256") for s_ in st.get("subject", [])}
    if got != want:
        raise VerificationFailed(
            "decision subject", "the decision is about other files, or another model signature", where
        )
    problem = candidate_problem(st["predicate"].get("models"), m)
    if problem:
        raise VerificationFailed("decision model", problem, where)
    return st
