"""A fake Sigstore on loopback: an OIDC issuer (discovery, JWKS, a GitHub-style token endpoint), a Fulcio that
checks the identity token against the issuer's keys and the CSR's proof of possession and issues short-lived
certificates with an embedded SCT, and a Rekor v1 log (a real Merkle tree, signed checkpoints and signed entry
timestamps). `trust_config()` points sigstore-python's unmodified signing and verifying code at it."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import struct
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

SCT_OID = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
REPOSITORY_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.5")
REF_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.6")
ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
REQUEST_TOKEN = "fake-actions-request-token"


def _spki(key: Any) -> bytes:
    der: bytes = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return der


def _key_id(key: Any) -> bytes:
    return hashlib.sha256(_spki(key)).digest()


def _der_octets(data: bytes) -> bytes:
    n = len(data)
    length = (
        bytes([n])
        if n < 128
        else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes((n.bit_length() + 7) // 8, "big")
    )
    return b"\x04" + length + data


def _der_utf8(text: str) -> bytes:
    data = text.encode()
    return b"\x0c" + bytes([len(data)]) + data  # short identities only (< 128 bytes)


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def merkle_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash."""
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _node(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def inclusion_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 audit path for leaf m, lowest level first."""
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if m < k:
        return [*inclusion_path(m, leaves[:k]), merkle_root(leaves[k:])]
    return [*inclusion_path(m - k, leaves[k:]), merkle_root(leaves[:k])]


class FakeSigstore:
    def __init__(self) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        self.oidc_key = ec.generate_private_key(ec.SECP256R1())
        self.ca_key = ec.generate_private_key(ec.SECP384R1())
        self.ct_key = ec.generate_private_key(ec.SECP256R1())
        self.rekor_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fake-sigstore"),
                x509.NameAttribute(NameOID.COMMON_NAME, "fake-fulcio"),
            ]
        )
        self.ca = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key()), critical=False
            )
            .sign(self.ca_key, hashes.SHA384())
        )
        self.leaves: list[bytes] = []
        self.entries: list[dict[str, Any]] = []
        self.certificates: list[x509.Certificate] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer._handle(self)

            do_POST = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def issuer(self) -> str:
        return f"{self.url}/oidc"

    def __enter__(self) -> FakeSigstore:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------ OIDC
    def token(self, **claims: Any) -> str:
        """An identity token from this issuer, as a CI platform would mint it."""
        import jwt

        now = int(dt.datetime.now(dt.timezone.utc).timestamp())
        body = {"iss": self.issuer, "aud": "sigstore", "iat": now, "nbf": now, "exp": now + 300, **claims}
        return jwt.encode(body, self.oidc_key, algorithm="ES256", headers={"kid": "fake"})

    def _jwks(self) -> dict[str, Any]:
        import jwt

        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.oidc_key.public_key()))
        return {"keys": [{**jwk, "kid": "fake", "use": "sig", "alg": "ES256"}]}

    def _verify_token(self, raw: str) -> dict[str, Any]:
        """As Fulcio does: discovery from the token's issuer, then its keys."""
        import jwt

        iss = jwt.decode(raw, options={"verify_signature": False})["iss"]
        with urllib.request.urlopen(f"{iss}/.well-known/openid-configuration", timeout=10) as r:
            jwks_uri = json.loads(r.read())["jwks_uri"]
        key = jwt.PyJWKClient(jwks_uri).get_signing_key_from_jwt(raw)
        claims: dict[str, Any] = jwt.decode(
            raw, key.key, algorithms=["ES256"], audience="sigstore", issuer=iss
        )
        return claims

    # ------------------------------------------------------------------ Fulcio
    def _certificate(self, claims: dict[str, Any], public_key: Any) -> x509.Certificate:
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        san = (
            f"https://github.com/{claims['job_workflow_ref']}"
            if "job_workflow_ref" in claims
            else claims["sub"]
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.ca.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(seconds=5))
            .not_valid_after(now + dt.timedelta(minutes=10))
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()), critical=False
            )
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(san)]), critical=True)
            .add_extension(x509.UnrecognizedExtension(ISSUER_V1, claims["iss"].encode()), critical=False)
            .add_extension(x509.UnrecognizedExtension(ISSUER_V2, _der_utf8(claims["iss"])), critical=False)
        )
        for oid, claim in ((REPOSITORY_V1, "repository"), (REF_V1, "ref")):
            if claim in claims:
                builder = builder.add_extension(
                    x509.UnrecognizedExtension(oid, claims[claim].encode()), critical=False
                )
        # the SCT signs the certificate as it is without the SCT: sign that first, then add the SCT last
        precert = builder.sign(self.ca_key, hashes.SHA384())
        timestamp = int(now.timestamp() * 1000)
        tbs = precert.tbs_certificate_bytes
        signed = (
            struct.pack("!BBQH", 0, 0, timestamp, 1)
            + _key_id(self.ca_key.public_key())
            + len(tbs).to_bytes(3, "big")
            + tbs
            + struct.pack("!H", 0)
        )
        signature = self.ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        sct = (
            b"\x00"
            + _key_id(self.ct_key.public_key())
            + struct.pack("!QH", timestamp, 0)
            + bytes([4, 3])
            + struct.pack("!H", len(signature))
            + signature
        )
        sct_list = struct.pack("!H", len(sct) + 2) + struct.pack("!H", len(sct)) + sct
        cert = builder.add_extension(
            x509.UnrecognizedExtension(SCT_OID, _der_octets(sct_list)), critical=False
        ).sign(self.ca_key, hashes.SHA384())
        assert cert.tbs_precertificate_bytes == tbs
        return cert

    def _signing_cert(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> tuple[int, Any]:
        auth = h.headers.get("Authorization", "")
        try:
            claims = self._verify_token(auth.removeprefix("Bearer "))
        except Exception as exc:  # what Fulcio answers to a bad token
            return 401, {"code": 16, "message": f"There was an error processing the identity token: {exc}"}
        csr = x509.load_pem_x509_csr(base64.b64decode(body["certificateSigningRequest"]))
        if not csr.is_signature_valid:
            return 400, {
                "code": 3,
                "message": "The signature on the CSR is not valid (no proof of possession)",
            }
        cert = self._certificate(claims, csr.public_key())
        with self.lock:
            self.certificates.append(cert)
        chain = [c.public_bytes(serialization.Encoding.PEM).decode() for c in (cert, self.ca)]
        return 201, {"signedCertificateEmbeddedSct": {"chain": {"certificates": chain}}}

    # ------------------------------------------------------------------ Rekor
    def _log_entry(self, proposed: dict[str, Any]) -> tuple[int, Any]:
        import rfc8785

        if proposed.get("kind") != "dsse":
            return 400, {"code": 400, "message": "this fake log takes dsse entries only"}
        content = proposed["spec"]["proposedContent"]
        envelope = json.loads(content["envelope"])
        cert = x509.load_pem_x509_certificate(base64.b64decode(content["verifiers"][0]))
        payload = base64.b64decode(envelope["payload"])
        ptype = envelope["payloadType"].encode()
        pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(payload), payload)
        sig = base64.b64decode(envelope["signatures"][0]["sig"])
        cert.public_key().verify(sig, pae, ec.ECDSA(hashes.SHA256()))  # raises: Rekor refuses bad entries
        body = rfc8785.dumps(
            {
                "apiVersion": "0.0.1",
                "kind": "dsse",
                "spec": {
                    "envelopeHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(content["envelope"].encode()).hexdigest(),
                    },
                    "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
                    "signatures": [
                        {"signature": envelope["signatures"][0]["sig"], "verifier": content["verifiers"][0]}
                    ],
                },
            }
        )
        log_id = _key_id(self.rekor_key.public_key())
        with self.lock:
            index = len(self.leaves)
            self.leaves.append(_leaf(body))
            size, leaves = len(self.leaves), list(self.leaves)
        root = merkle_root(leaves)
        note = f"fake-rekor - 1\n{size}\n{base64.b64encode(root).decode()}\n"
        note_sig = self.rekor_key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        checkpoint = f"{note}\n\u2014 fake-rekor {base64.b64encode(log_id[:4] + note_sig).decode()}\n"
        integrated = int(dt.datetime.now(dt.timezone.utc).timestamp())
        body_b64 = base64.b64encode(body).decode()
        set_payload = rfc8785.dumps(
            {"body": body_b64, "integratedTime": integrated, "logID": log_id.hex(), "logIndex": index}
        )
        entry = {
            "body": body_b64,
            "integratedTime": integrated,
            "logID": log_id.hex(),
            "logIndex": index,
            "verification": {
                "signedEntryTimestamp": base64.b64encode(
                    self.rekor_key.sign(set_payload, ec.ECDSA(hashes.SHA256()))
                ).decode(),
                "inclusionProof": {
                    "checkpoint": checkpoint,
                    "hashes": [h.hex() for h in inclusion_path(index, leaves)],
                    "logIndex": index,
                    "rootHash": root.hex(),
                    "treeSize": size,
                },
            },
        }
        with self.lock:
            self.entries.append(entry)
        return 201, {hashlib.sha256(body).hexdigest(): entry}

    # ------------------------------------------------------------------ HTTP
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        body = json.loads(h.rfile.read(length)) if length else None
        route = (h.command, parts.path)
        if route == ("GET", "/oidc/.well-known/openid-configuration"):
            status, out = 200, {"issuer": self.issuer, "jwks_uri": f"{self.issuer}/jwks"}
        elif route == ("GET", "/oidc/jwks"):
            status, out = 200, self._jwks()
        elif route == ("GET", "/oidc/actions-token"):  # GitHub's ACTIONS_ID_TOKEN_REQUEST_URL
            query = parse_qs(parts.query)
            scheme, _, given = (h.headers.get("Authorization") or "").partition(" ")
            if (
                scheme.lower() != "bearer" or given != REQUEST_TOKEN
            ):  # the scheme is case-insensitive (RFC 7235)
                status, out = 401, {"message": "bad request token"}
            else:
                aud = query.get("audience", [""])[0]
                claims = {**self.github_claims, "aud": aud}
                status, out = 200, {"value": self.token(**claims)}
        elif route == ("POST", "/api/v2/signingCert"):
            status, out = self._signing_cert(h, body or {})
        elif route == ("POST", "/api/v1/log/entries"):
            try:
                status, out = self._log_entry(body or {})
            except Exception as exc:
                status, out = 400, {"code": 400, "message": f"invalid entry: {exc}"}
        else:
            status, out = 404, {"message": "not found"}
        data = json.dumps(out).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    github_claims: dict[str, Any] = {
        "sub": "repo:acme/models:ref:refs/heads/main",
        "repository": "acme/models",
        "ref": "refs/heads/main",
        "job_workflow_ref": "acme/models/.github/workflows/release.yml@refs/heads/main",
    }

    # ------------------------------------------------------------------ trust
    def trusted_root(self) -> dict[str, Any]:
        start = "2020-01-01T00:00:00Z"

        def key(k: Any) -> dict[str, Any]:
            return {
                "rawBytes": base64.b64encode(_spki(k.public_key())).decode(),
                "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                "validFor": {"start": start},
            }

        return {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [
                {
                    "baseUrl": self.url,
                    "hashAlgorithm": "SHA2_256",
                    "publicKey": key(self.rekor_key),
                    "logId": {"keyId": base64.b64encode(_key_id(self.rekor_key.public_key())).decode()},
                }
            ],
            "certificateAuthorities": [
                {
                    "subject": {"organization": "fake-sigstore", "commonName": "fake-fulcio"},
                    "uri": self.url,
                    "certChain": {
                        "certificates": [
                            {
                                "rawBytes": base64.b64encode(
                                    self.ca.public_bytes(serialization.Encoding.DER)
                                ).decode()
                            }
                        ]
                    },
                    "validFor": {"start": start},
                }
            ],
            "ctlogs": [
                {
                    "baseUrl": self.url,
                    "hashAlgorithm": "SHA2_256",
                    "publicKey": key(self.ct_key),
                    "logId": {"keyId": base64.b64encode(_key_id(self.ct_key.public_key())).decode()},
                }
            ],
            "timestampAuthorities": [],
        }

    def trust_config(self) -> dict[str, Any]:
        def service(url: str) -> dict[str, Any]:
            return {
                "url": url,
                "majorApiVersion": 1,
                "validFor": {"start": "2020-01-01T00:00:00Z"},
                "operator": "fake",
            }

        return {
            "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": self.trusted_root(),
            "signingConfig": {
                "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
                "caUrls": [service(self.url)],
                "oidcUrls": [service(self.issuer)],
                "rekorTlogUrls": [service(self.url)],
                "tsaUrls": [],
                "rekorTlogConfig": {"selector": "ANY"},
                "tsaConfig": {"selector": "ANY"},
            },
        }
