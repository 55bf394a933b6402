"""Signatures backed by X.509 certificates from a private CA, in the layout model-signing's certificate signer
writes (the signing certificate and its chain in the bundle's verification material), so its stock verifier
and ours accept the same files. The key may be a PEM file or held in a PKCS#11 token."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_gates.errors import GateError, VerificationFailed
from mlops_gates.signing.envelope import public_pem, verify_with_key


def _pem_certificates(path: Path, what: str) -> list[Any]:
    from cryptography import x509

    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise GateError(
            f"not a readable PEM file of certificates ({exc})", where=str(path), hint=f"pass {what} as PEM"
        ) from None
    return list(certs)


def _can_sign(cert: Any) -> bool:
    """The certificate may sign: digitalSignature key usage, or the code-signing extended key usage."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    try:
        if cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature:
            return True
    except x509.ExtensionNotFound:
        pass
    try:
        return (
            ExtendedKeyUsageOID.CODE_SIGNING
            in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        )
    except x509.ExtensionNotFound:
        return False


@dataclass(frozen=True)
class CertifiedKey:
    """A key (PEM or PKCS#11) with the certificate a private CA issued for it, and the chain up to the CA."""

    key: Any = field(repr=False)
    chain: tuple[Any, ...]  # the signing certificate first

    @classmethod
    def load(cls, key: Any, certificate: Path, chain: Path | None) -> CertifiedKey:
        (leaf, *rest) = _pem_certificates(certificate, "--certificate")
        extra = _pem_certificates(chain, "--certificate-chain") if chain else []
        if public_pem(leaf.public_key()) != public_pem(key.public_key()):
            raise GateError(
                "the certificate is not for this key (their public keys differ)",
                where=str(certificate),
                hint="pass the certificate the CA issued for the signing key",
            )
        if not _can_sign(leaf):
            raise GateError(
                "the certificate may not sign (no digitalSignature key usage, no code-signing usage)",
                where=str(certificate),
                hint="have the CA issue one with keyUsage digitalSignature",
            )
        return cls(key, (leaf, *rest, *extra))

    def public_key(self) -> Any:
        return self.key.public_key()

    def sign_bundle(self, payload: bytes, payload_type: str) -> dict[str, Any]:
        from cryptography.hazmat.primitives import serialization

        bundle: dict[str, Any] = self.key.sign_bundle(payload, payload_type)
        der = [c.public_bytes(serialization.Encoding.DER) for c in self.chain]
        bundle["verificationMaterial"] = {
            "x509CertificateChain": {
                "certificates": [{"rawBytes": base64.b64encode(d).decode()} for d in der]
            },
            "tlogEntries": [],
        }
        return bundle


def _names(cert: Any) -> list[str]:
    """The identities a certificate names: its SANs (e-mail, URI, DNS) and its subject's common names."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        for kind in (x509.RFC822Name, x509.UniformResourceIdentifier, x509.DNSName):
            names += san.get_values_for_type(kind)
    except x509.ExtensionNotFound:
        pass
    return names + [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def verify_with_certificates(
    bundle: dict[str, Any], ca: Path, identity: str | None, identity_regexp: str | None, where: str
) -> tuple[str, bytes]:
    """The signing certificate chains to the CA (at its issue time, as model-signing's verifier checks: a
    bundle without a transparency log has no other trusted time), may sign, names the identity asked for, and
    its key signed the envelope. Returns (payload type, payload)."""
    from cryptography import x509
    from cryptography.x509 import verification as xv

    try:
        raw = bundle["verificationMaterial"]["x509CertificateChain"]["certificates"]
        certs = [x509.load_der_x509_certificate(base64.b64decode(c["rawBytes"])) for c in raw]
    except (KeyError, TypeError, ValueError):
        raise VerificationFailed(
            "certificate", "the bundle carries no readable certificate chain", where
        ) from None
    if not certs:
        raise VerificationFailed("certificate", "the bundle's certificate chain is empty", where)
    leaf, intermediates = certs[0], certs[1:]
    anchors = _pem_certificates(ca, "the CA's certificates")
    policy = (
        xv.PolicyBuilder()
        .store(xv.Store(anchors))
        .time(leaf.not_valid_before_utc)
        .extension_policies(
            ca_policy=xv.ExtensionPolicy.webpki_defaults_ca(), ee_policy=xv.ExtensionPolicy.permit_all()
        )
    )
    try:
        policy.build_client_verifier().verify(leaf, intermediates)
    except xv.VerificationError as exc:
        raise VerificationFailed("certificate", f"does not chain to the trusted CA ({exc})", where) from None
    if not _can_sign(leaf):
        raise VerificationFailed("certificate", "the signing certificate may not sign", where)
    names = _names(leaf)
    if identity is not None and identity not in names:
        raise VerificationFailed("identity", f"the certificate names {names}, not {identity}", where)
    if identity_regexp is not None and not any(re.fullmatch(identity_regexp, n) for n in names):
        raise VerificationFailed(
            "identity", f"no name of the certificate ({names}) matches {identity_regexp}", where
        )
    return verify_with_key(bundle, leaf.public_key(), where)
