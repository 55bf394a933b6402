"""Encryption at rest for a folder registry, by envelope: each version's files and signatures (the decision
attestation carries per-group numbers) are sealed with the version's own data key, AES-256-GCM in 1 MiB
segments, each bound to its model, version, file name, position and whether it is the last (so nothing can be
swapped, reordered or cut). The data key is wrapped by the registry key: a key file of 32 random bytes, or an
AES key that never leaves a PKCS#11 token, named by MLOPS_GATES_REGISTRY_KEY. Rotating the registry key
rewraps the data keys; the sealed files stay as they are."""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from pathlib import Path
from typing import Any, Protocol

from mlops_gates.errors import GateError, Tampered

KEY_ENV = "MLOPS_GATES_REGISTRY_KEY"
MAGIC = b"MGENC1\n"
SEGMENT = 1 << 20
TAG = 16
CIPHER = "AES-256-GCM, 1 MiB segments"


class RegistryKey(Protocol):
    """Wraps and unwraps data keys; `id` names it (never a secret) so a wrong key is told apart from tampering."""

    id: str

    def wrap(self, dek: bytes, aad: bytes) -> dict[str, str]: ...

    def unwrap(self, wrapped: dict[str, str], aad: bytes) -> bytes: ...


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


class KeyFile:
    """A registry key in a file: 32 random bytes, raw or base64 (`openssl rand 32 > registry.key`)."""

    def __init__(self, path: Path):
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise GateError(f"cannot read the registry key ({exc.strerror})", where=str(path)) from None
        if len(raw) != 32:
            try:
                raw = base64.b64decode(raw.strip(), validate=True)
            except ValueError:
                raw = b""
        if len(raw) != 32:
            raise GateError(
                "a registry key file holds 32 random bytes (raw or base64)",
                where=str(path),
                hint="make one: openssl rand 32 > registry.key (and keep it out of the repository)",
            )
        self._key = raw
        self.id = "file:" + hashlib.sha256(b"mlops-gates registry key\0" + raw).hexdigest()[:16]

    def wrap(self, dek: bytes, aad: bytes) -> dict[str, str]:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        iv = os.urandom(12)
        return {"key": self.id, "iv": _b64(iv), "wrapped": _b64(AESGCM(self._key).encrypt(iv, dek, aad))}

    def unwrap(self, wrapped: dict[str, str], aad: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            iv, ct = base64.b64decode(wrapped["iv"]), base64.b64decode(wrapped["wrapped"])
            return AESGCM(self._key).decrypt(iv, ct, aad)
        except (InvalidTag, ValueError, KeyError, TypeError):
            raise Tampered("the version's data key does not unwrap: its key.json was edited") from None


class TokenKey:
    """A registry key inside a PKCS#11 token (an AES secret key object): the token wraps and unwraps, with
    AES-GCM; the key itself never leaves it. The PIN comes from MLOPS_GATES_PKCS11_PIN only."""

    def __init__(self, uri: str):
        from mlops_gates.signing.pkcs11 import scrubbed, token_pin

        pin = token_pin(uri, where=KEY_ENV)
        try:
            import PyKCS11
            from model_signing._signing.pkcs11uri import Pkcs11URI
        except ImportError:
            raise GateError("a registry key in a token needs 'mlops-gates[pkcs11]'") from None
        try:
            parsed = Pkcs11URI()
            parsed.parse(uri)
            parsed.set_allow_any_module(True)  # the module is the one the operator named
            parsed.add_query_attribute("pin-value", pin)
            self._session, self._lib = parsed.login()
            keyid, label = parsed.get_keyid_and_label()
            template = [(PyKCS11.CKA_CLASS, PyKCS11.CKO_SECRET_KEY)]
            template += [(PyKCS11.CKA_LABEL, label)] if label else []
            template += [(PyKCS11.CKA_ID, tuple(keyid))] if keyid else []
            found = self._session.findObjects(template)
        except Exception as exc:  # PyKCS11 and the URI parser raise several kinds; none may show the PIN
            raise GateError(
                f"the registry key's token could not be opened ({scrubbed(exc, pin)})",
                where=uri,
                hint="check the URI's token, object and module-path, and the PIN",
            ) from None
        if len(found) != 1:
            raise GateError(f"the token holds {len(found)} secret keys matching the URI, not one", where=uri)
        self._key = found[0]
        self.id = "pkcs11:" + (label or bytes(keyid or b"").hex())

    def _mech(self, iv: bytes, aad: bytes) -> Any:
        import PyKCS11

        return PyKCS11.AES_GCM_Mechanism(iv, aad, 128)

    def wrap(self, dek: bytes, aad: bytes) -> dict[str, str]:
        iv = os.urandom(12)
        ct = bytes(self._session.encrypt(self._key, dek, self._mech(iv, aad)))
        return {"key": self.id, "iv": _b64(iv), "wrapped": _b64(ct)}

    def unwrap(self, wrapped: dict[str, str], aad: bytes) -> bytes:
        try:
            iv, ct = base64.b64decode(wrapped["iv"]), base64.b64decode(wrapped["wrapped"])
            return bytes(self._session.decrypt(self._key, ct, self._mech(iv, aad)))
        except Exception:  # the token's CKR_ENCRYPTED_DATA_INVALID and friends
            raise Tampered("the version's data key does not unwrap: its key.json was edited") from None


def registry_key(ref: str | None = None) -> RegistryKey:
    """The key `ref` names (default: MLOPS_GATES_REGISTRY_KEY): a key file's path or a pkcs11: URI."""
    ref = ref if ref is not None else os.environ.get(KEY_ENV)
    if not ref:
        raise GateError(
            "the registry is encrypted at rest, and no registry key is given",
            hint=f"set {KEY_ENV} to the key file's path or the key's pkcs11: URI",
        )
    return TokenKey(ref) if ref.startswith("pkcs11:") else KeyFile(Path(ref))


def _aad(context: bytes, index: int, last: bool) -> bytes:
    return context + b"\0" + struct.pack(">QB", index, last)


def seal(src: Path, dst: Path, dek: bytes, context: bytes) -> None:
    """Encrypt `src` into `dst`, streaming, segment by segment."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aes, prefix = AESGCM(dek), os.urandom(8)
    with open(src, "rb") as f, open(dst, "wb") as out:
        out.write(MAGIC + prefix)
        chunk, i = f.read(SEGMENT), 0
        while True:
            after = f.read(SEGMENT)
            last = not after
            out.write(aes.encrypt(prefix + struct.pack(">I", i), chunk, _aad(context, i, last)))
            if last:
                return
            chunk, i = after, i + 1


def unseal(src: Path, dst: Path, dek: bytes, context: bytes) -> None:
    """Decrypt `src` into `dst`; a changed, swapped, reordered or cut file is Tampered."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aes = AESGCM(dek)
    with open(src, "rb") as f, open(dst, "wb") as out:
        if f.read(len(MAGIC)) != MAGIC:
            raise Tampered("not a sealed file (it was replaced after registering)", where=str(src))
        prefix = f.read(8)
        chunk, i = f.read(SEGMENT + TAG), 0
        while True:
            after = f.read(SEGMENT + TAG)
            try:
                out.write(aes.decrypt(prefix + struct.pack(">I", i), chunk, _aad(context, i, not after)))
            except InvalidTag:
                raise Tampered("a sealed file changed after it was registered", where=str(src)) from None
            if not after:
                return
            chunk, i = after, i + 1


def new_data_key() -> bytes:
    return os.urandom(32)


def context(model: str, digest: str, name: str) -> bytes:
    return f"mlops-gates registry\0{model}\0{digest}\0{name}".encode()
