"""DSSE envelopes in Sigstore bundles (v0.3), signed with an ECDSA key; keys never reach a log."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_gates.errors import GateError, VerificationFailed

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: what is actually signed."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def curve_hash(key: Any) -> Any:
    from cryptography.hazmat.primitives import hashes

    return {"secp256r1": hashes.SHA256(), "secp384r1": hashes.SHA384()}[key.curve.name]


def check_curve(key: Any, where: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    if not isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)) or key.curve.name not in (
        "secp256r1",
        "secp384r1",
    ):
        raise GateError(
            "the key is not an ECDSA P-256 or P-384 key",
            where=where,
            hint="create one: openssl ecparam -name prime256v1 -genkey",
        )


@dataclass(frozen=True)
class PrivateKey:
    key: Any = field(repr=False)
    where: str

    @classmethod
    def load(
        cls, path: Path | None = None, env: str | None = None, password: bytes | None = None
    ) -> PrivateKey:
        from mlops_gates.signing import need

        serialization = need("cryptography.hazmat.primitives.serialization")

        if path is not None:
            where = str(path)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise GateError(
                    f"cannot read the private key ({exc.strerror})", where=where, hint="check --key"
                ) from None
        else:
            where = f"${env}"
            data = os.environ.get(env or "", "").encode()
            if not data:
                raise GateError(
                    "no private key in the environment variable",
                    where=where,
                    hint="set it to the PEM text of the key",
                )
        try:
            key = serialization.load_pem_private_key(data, password=password)
        except (ValueError, TypeError):
            raise GateError(
                "not a readable PEM private key (or it needs a password)",
                where=where,
                hint="pass an unencrypted PEM ECDSA key, or its password",
            ) from None
        check_curve(key, where)
        return cls(key, where)

    def public_key(self) -> Any:
        return self.key.public_key()

    def sign_raw(self, data: bytes) -> bytes:
        """An ECDSA signature (DER) over data, with the curve's hash."""
        from cryptography.hazmat.primitives.asymmetric import ec

        return bytes(self.key.sign(data, ec.ECDSA(curve_hash(self.key))))

    def sign_bundle(self, payload: bytes, payload_type: str) -> dict[str, Any]:
        return key_bundle(self, payload, payload_type)


def public_pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(
        key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def key_bundle(key: Any, payload: bytes, payload_type: str) -> dict[str, Any]:
    """A DSSE envelope signed by any key that signs raw bytes (a PEM key, a key in a PKCS#11 token), in a
    bundle whose verification material is the public key's hint, as model-signing's key signer writes it."""
    sig = key.sign_raw(pae(payload_type, payload))
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "publicKey": {"hint": hashlib.sha256(public_pem(key.public_key())).hexdigest()},
            "tlogEntries": [],
        },
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": payload_type,
            "signatures": [{"sig": base64.b64encode(sig).decode(), "keyid": ""}],
        },
    }


def load_public_key(path: Path) -> Any:
    from mlops_gates.signing import need

    serialization = need("cryptography.hazmat.primitives.serialization")

    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise GateError(
            f"not a readable PEM public key ({exc})",
            where=str(path),
            hint="pass the public half of the signing key",
        ) from None
    check_curve(key, str(path))
    return key


def read_bundle(path: Path) -> dict[str, Any]:
    try:
        bundle = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise GateError(
            "signature not found", where=str(path), hint="pass --signature, or sign the model first"
        ) from None
    except (OSError, ValueError) as exc:
        raise VerificationFailed("bundle", f"not a JSON Sigstore bundle ({exc})", str(path)) from None
    if not isinstance(bundle, dict) or "dsseEnvelope" not in bundle and "messageSignature" not in bundle:
        raise VerificationFailed("bundle", "neither a DSSE envelope nor a message signature", str(path))
    return bundle


def verify_with_key(bundle: dict[str, Any], key: Any, where: str) -> tuple[str, bytes]:
    """Check a key-signed DSSE bundle; returns (payload type, payload)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec

    env = bundle.get("dsseEnvelope")
    if not env:
        raise VerificationFailed("bundle", "no DSSE envelope to check with a key", where)
    hint = ((bundle.get("verificationMaterial") or {}).get("publicKey") or {}).get("hint")
    if hint and hint != hashlib.sha256(public_pem(key)).hexdigest():
        raise VerificationFailed(
            "key", "the bundle was signed by another key (its public-key hint differs)", where
        )
    try:
        payload = base64.b64decode(env["payload"])
        sig = base64.b64decode(env["signatures"][0]["sig"])
        key.verify(sig, pae(env["payloadType"], payload), ec.ECDSA(curve_hash(key)))
    except (KeyError, IndexError, ValueError):
        raise VerificationFailed("bundle", "malformed DSSE envelope", where) from None
    except InvalidSignature:
        raise VerificationFailed("signature", "does not verify with this public key", where) from None
    return env["payloadType"], payload


def unverified_statement(path: Path) -> dict[str, Any] | None:
    """The statement inside a DSSE bundle, read without checking its signature: for linking and showing what
    a verified file says (verify checks it). None when the file is not such a bundle."""
    try:
        statement = json.loads(base64.b64decode(json.loads(path.read_bytes())["dsseEnvelope"]["payload"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return statement if isinstance(statement, dict) else None
