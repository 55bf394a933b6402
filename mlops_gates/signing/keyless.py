"""Keyless signing with Sigstore: an identity token from the CI platform (or given), a short-lived Fulcio
certificate, and a Rekor entry, through sigstore-python's own signing code. Public-good Sigstore by default,
or any deployment a client trust configuration describes (--trust-config)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlops_gates.errors import GateError
from mlops_gates.signing.statements import PAYLOAD_TYPE


def find_identity_token(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The OIDC token to sign with: --identity-token, else what the CI platform gives (platforms.ci)."""
    from mlops_gates.platforms.ci import identity_token

    return explicit or identity_token(env)


class KeylessSigner:
    """Signs DSSE payloads with one short-lived certificate for the whole run (the model and the decision)."""

    def __init__(self, token: str, trust_config: Path | None = None):
        self._token = token
        self._trust_config = trust_config
        self._signer: Any = None
        self.where = str(trust_config) if trust_config else "public-good Sigstore"

    def _open(self) -> Any:
        from sigstore.models import ClientTrustConfig
        from sigstore.oidc import IdentityError, IdentityToken
        from sigstore.sign import SigningContext

        try:
            if self._trust_config is not None:
                config = ClientTrustConfig.from_json(self._trust_config.read_text())
            else:
                config = ClientTrustConfig.production()
        except OSError as exc:
            raise GateError(f"cannot read it ({exc.strerror})", where=str(self._trust_config)) from None
        except Exception as exc:
            raise GateError(
                f"not a Sigstore client trust configuration ({exc})",
                where=self.where,
                hint="pass the JSON your Sigstore deployment publishes (mediaType ...clienttrustconfig...)",
            ) from None
        try:
            token = IdentityToken(self._token)
        except IdentityError as exc:
            raise GateError(
                f"the identity token is not usable: {exc}", hint="mint a fresh one with aud: sigstore"
            ) from None
        ctx = SigningContext.from_trust_config(config)
        try:
            with ctx.signer(token) as signer:  # requests the certificate now (and checks its SCT)
                return signer
        except Exception as exc:
            raise GateError(
                f"Sigstore refused a signing certificate: {type(exc).__name__}: {exc}",
                where=self.where,
                hint="check the identity token's issuer and audience, and the trust configuration",
            ) from None

    def sign_bundle(self, payload: bytes, payload_type: str) -> dict[str, Any]:
        from sigstore import dsse

        if payload_type != PAYLOAD_TYPE:  # sigstore's DSSE signing wraps in-toto statements only
            raise GateError(f"keyless signing covers in-toto statements, not {payload_type}")
        if self._signer is None:
            self._signer = self._open()
        try:
            bundle = self._signer.sign_dsse(dsse.Statement(payload))
        except Exception as exc:
            raise GateError(
                f"Sigstore signing failed: {type(exc).__name__}: {exc}", where=self.where
            ) from None
        out: dict[str, Any] = json.loads(bundle.to_json())
        return out
