"""A signing key held in a PKCS#11 token (an HSM, a smart card, SoftHSM): named by an RFC 7512 URI, unlocked
with a PIN from the environment. model-signing's PKCS#11 signer parses the URI, loads the module, logs in and
finds the key; the token signs, and the key never leaves it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from mlops_gates.errors import GateError
from mlops_gates.signing.envelope import check_curve, curve_hash, key_bundle

PIN_ENV = "MLOPS_GATES_PKCS11_PIN"


def is_pkcs11(key: str) -> bool:
    return key.startswith("pkcs11:")


def _scrub(text: str, *secrets: str) -> str:
    for secret in secrets:
        text = text.replace(secret, "***") if secret else text
    return text


def token_pin(uri: str, pin_env: str = PIN_ENV, where: str = "--key") -> str:
    """The token's PIN, from the environment only: a URI that carries one (pin-value, pin-source) is refused,
    as it would sit in a command line, a process list or a log. PyKCS11 must be importable."""
    if "pin-value" in uri or "pin-source" in uri:
        raise GateError(
            "the PKCS#11 URI carries a PIN",
            where=where,
            hint=f"drop pin-value/pin-source from the URI and set {pin_env} instead",
        )
    pin = os.environ.get(pin_env, "")
    if not pin:
        raise GateError(
            f"no PIN for the PKCS#11 token in {pin_env}",
            where=uri,
            hint=f"set {pin_env} (a masked CI variable) to the token's user PIN",
        )
    from mlops_gates.signing import need

    need("PyKCS11")
    return pin


def scrubbed(exc: BaseException, *secrets: str) -> str:
    """An exception's text with the secrets starred out, short enough for one line."""
    return _scrub(f"{type(exc).__name__}: {exc}", *secrets)[:300]


@dataclass(frozen=True)
class Pkcs11Key:
    signer: Any = field(repr=False)  # model-signing's PKCS#11 signer: the session and the key's handle
    where: str  # the URI as given (it holds no PIN)

    @classmethod
    def open(cls, uri: str, pin_env: str = PIN_ENV) -> Pkcs11Key:
        """The key the URI names; the PIN comes only from the environment (token_pin)."""
        pin = token_pin(uri, pin_env)
        try:
            from model_signing._signing.pkcs11uri import escape
            from model_signing._signing.sign_pkcs11 import Signer
        except ImportError:
            raise GateError(
                "signing with a PKCS#11 token needs model-signing's pkcs11 support",
                hint="pip install 'mlops-gates[pkcs11]'",
            ) from None
        escaped = escape(pin, False)
        try:
            signer = Signer(uri + ("&" if "?" in uri else "?") + "pin-value=" + escaped)
        except Exception as exc:  # PyKCS11 and the URI parser raise several kinds; none may show the PIN
            what = scrubbed(exc, pin, escaped)
            raise GateError(
                f"the PKCS#11 token could not be opened ({what})",
                where=uri,
                hint="check the URI's token and object (or id), its module-path, and the PIN",
            ) from None
        check_curve(signer.public_key(), uri)
        return cls(signer, uri)

    def public_key(self) -> Any:
        return self.signer.public_key()

    def sign_raw(self, data: bytes) -> bytes:
        """The token signs the digest (CKM_ECDSA); its r||s is encoded as DER, as ECDSA signatures are."""
        import PyKCS11
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        h = hashes.Hash(curve_hash(self.public_key()))
        h.update(data)
        rs = bytes(
            self.signer.session.sign(
                self.signer._private_key, h.finalize(), mecha=PyKCS11.Mechanism(PyKCS11.CKM_ECDSA, None)
            )
        )
        half = len(rs) // 2
        return bytes(encode_dss_signature(int.from_bytes(rs[:half], "big"), int.from_bytes(rs[half:], "big")))

    def sign_bundle(self, payload: bytes, payload_type: str) -> dict[str, Any]:
        return key_bundle(self, payload, payload_type)
