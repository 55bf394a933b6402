"""The HTTP client for CI APIs, over a requests session: timeouts on every request, retries with backoff on 5xx
and connection errors, GitHub's rate limits honoured (retry-after, x-ratelimit-reset, secondary limits), a
bounded total time, and secrets kept out of every message. The retry rules are here, not urllib3's Retry: its
schedule cannot wait for x-ratelimit-reset or bound all tries by one total time."""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mlops_gates.errors import RemoteError


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


_CREDENTIAL_HEADERS = ("authorization", "private-token", "job-token", "x-api-key", "proxy-authorization")


def secret_forms(secret: str) -> set[str]:
    """Every form a credential travels or echoes in: as is, URL-encoded, base64 (Basic auth's user:password),
    JSON-escaped; a Basic credential also yields its decoded pair and password."""
    if not secret:
        return set()
    forms = {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}
    forms.add(base64.b64encode(secret.encode()).decode())
    forms.add(json.dumps(secret)[1:-1])
    scheme, _, value = secret.partition(" ")
    if value and scheme.lower() in ("basic", "bearer", "token"):
        forms |= secret_forms(value)
    if scheme.lower() == "basic":
        try:
            pair = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            pair = ""
        if ":" in pair:
            forms |= secret_forms(pair) | secret_forms(pair.split(":", 1)[1])
    return {f for f in forms if len(f) >= 4}


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


class _OffOrigin(Exception):
    """A redirect pointed outside the API's origin (raised inside requests, reported by Http)."""

    def __init__(self, code: int, host: str):
        self.code, self.host = code, host


def _session() -> Any:
    """A requests session that follows a redirect only within the request's origin: requests keeps custom
    credential headers (PRIVATE-TOKEN) across hosts. No .netrc (it would replace the Authorization header);
    proxies and a private CA bundle from the environment, as before."""
    import requests

    class SameOrigin(requests.Session):
        def rebuild_auth(self, prepared: Any, response: Any) -> None:
            if _origin(prepared.url) != _origin(response.request.url):
                raise _OffOrigin(response.status_code, _origin(prepared.url)[1])
            super().rebuild_auth(prepared, response)

    session = SameOrigin()
    session.trust_env = False
    session.verify = _ca_bundle()
    return session


def _ca_bundle() -> str | bool:
    """The CAs urllib trusted: a bundle the environment names, else the system's (a company CA installed on
    the runner), else requests' own (certifi)."""
    import ssl

    named = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
    paths = ssl.get_default_verify_paths()
    found = next((f for f in (named, paths.cafile, paths.openssl_cafile) if f and os.path.isfile(f)), None)
    return found or True


@dataclass
class Http:
    """One API origin. Credentials in `headers` (and any extra `secrets`) are scrubbed, in every encoding,
    from anything this client says; requests and redirects never leave the origin of `base_url`."""

    base_url: str
    headers: dict[str, str] = field(repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)
    timeout: float = 10.0
    retries: int = 4
    backoff: float = 1.0  # seconds, doubled each retry
    max_total: float = 120.0  # seconds for one request, waits included
    max_wait: float = 60.0  # longest single wait a rate limit may ask for
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    error: type[RemoteError] = RemoteError  # what a failure raises (the publishing drivers: PublishError)

    def __post_init__(self) -> None:
        creds = [v for k, v in self.headers.items() if k.lower() in _CREDENTIAL_HEADERS]
        forms: set[str] = set()
        for secret in (*self.secrets, *creds):
            forms |= secret_forms(secret)
        self._forms = sorted(forms, key=len, reverse=True)  # longest first: a form inside another goes too
        self._session: Any = None  # made on the first request (requests is imported only then)

    def __repr__(self) -> str:
        return f"Http({self.base_url!r})"

    def scrub(self, text: str) -> str:
        for form in self._forms:
            text = text.replace(form, "***")
        return text

    def url(self, path: str, params: dict[str, Any] | None = None) -> str:
        url = (
            path
            if path.startswith(("http://", "https://"))
            else self.base_url.rstrip("/") + "/" + path.lstrip("/")
        )
        return url + ("?" + urllib.parse.urlencode(params) if params else "")

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: bytes | None = None,
        params: dict[str, Any] | None = None,
        ok: Callable[[Response], bool] | None = None,
    ) -> Response:
        url = self.url(path, params)
        shown = self.scrub(f"{method} {urllib.parse.urlsplit(url).path}")
        if _origin(url) != _origin(self.base_url):
            raise self.error(
                self.scrub(f"{shown}: refused to send the credential to another origin ({_origin(url)[1]})"),
                hint="the API pointed at a URL outside its own host; check the API URL",
            )
        data = body if json_body is None else json.dumps(json_body).encode()
        headers = {"Accept": "application/json", "User-Agent": "mlops-gates", **self.headers}
        if json_body is not None:
            headers["Content-Type"] = "application/json"
        elif body is not None:
            headers["Content-Type"] = "application/octet-stream"
        start = self.clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = self._send(method, url, data, headers)
            except _OffOrigin as e:
                raise self.error(
                    f"HTTP {e.code}: refused to follow a redirect to another origin ({e.host}) with the credential",
                    status=e.code,
                    hint="the API answered with a redirect outside its own host; check the API URL",
                ) from None
            except OSError as e:  # requests' errors are OSErrors: no connection, a timeout, a reset
                wait = self.backoff * 2 ** (attempt - 1)
                if attempt <= self.retries and self.clock() - start + wait <= self.max_total:
                    self.sleep(wait)
                    continue
                raise self.error(
                    self.scrub(f"{shown}: cannot reach the API after {attempt} tries ({_reason(e)})"),
                    hint="check the API URL and the runner's network",
                ) from None
            if ok is not None and ok(resp):
                return resp
            wait = self._wait(resp, attempt)
            if wait is not None and attempt <= self.retries and self.clock() - start + wait <= self.max_total:
                self.sleep(wait)
                continue
            if resp.status >= 400:
                raise self.error(
                    f"{shown}: HTTP {resp.status}: {_message(resp, self.scrub)}",
                    status=resp.status,
                    hint=_hint(resp.status),
                )
            return resp

    def _send(self, method: str, url: str, data: bytes | None, headers: dict[str, str]) -> Response:
        if self._session is None:
            self._session = _session()
        host = urllib.parse.urlsplit(url).hostname or ""
        proxies = {} if urllib.request.proxy_bypass(host) else urllib.request.getproxies()
        r = self._session.request(
            method, url, data=data, headers=headers, timeout=self.timeout, proxies=proxies
        )
        return Response(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content)

    def _wait(self, resp: Response, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None when the answer should not be retried."""
        h = resp.headers
        limited = resp.status == 429 or (
            resp.status == 403
            and (
                h.get("x-ratelimit-remaining") == "0"
                or "retry-after" in h
                or b"rate limit" in resp.body.lower()
            )
        )
        if limited:
            if "retry-after" in h and h["retry-after"].strip().isdigit():
                wait = float(h["retry-after"])
            elif h.get("x-ratelimit-remaining") == "0" and h.get("x-ratelimit-reset", "").isdigit():
                wait = max(0.0, float(h["x-ratelimit-reset"]) - self.wall()) + 1
            else:  # a secondary limit without a hint: GitHub asks for at least a minute
                wait = max(60.0, self.backoff * 2 ** (attempt - 1))
            return wait if wait <= self.max_wait else None
        if resp.status in (500, 502, 503, 504):
            return self.backoff * 2 ** (attempt - 1)
        return None

    def paginate(self, path: str, params: dict[str, Any] | None = None) -> Iterator[Any]:
        """Every item of a list endpoint: follows GitHub's Link rel="next" and GitLab's x-next-page."""
        url: str | None = self.url(path, {**(params or {}), "per_page": 100})
        pages = 0
        while url and pages < 1000:
            pages += 1
            resp = self.request("GET", url)
            try:
                page = resp.json()
            except ValueError:
                page = None
            if not isinstance(page, list):
                raise self.error(
                    self.scrub(
                        f"GET {urllib.parse.urlsplit(url).path}: expected a list, got {type(page).__name__}"
                    ),
                    hint="the API answered in a shape it never uses for this call; check the API URL",
                )
            yield from page
            url = _next(resp, url)


def _reason(exc: OSError) -> str:
    """The cause in a few words (requests' own message repeats the URL and the connection pool's state)."""
    import requests

    if isinstance(exc, requests.Timeout):
        return "timed out"
    found = re.findall(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))
    return found[-1].strip() if found else type(exc).__name__


def _next(resp: Response, url: str) -> str | None:
    link = resp.headers.get("link", "")
    m = re.search(r'<([^>]+)>;\s*rel="next"', link)
    if m:
        return m.group(1)
    nxt = resp.headers.get("x-next-page", "").strip()
    if nxt:
        parts = urllib.parse.urlsplit(url)
        q = dict(urllib.parse.parse_qsl(parts.query))
        q["page"] = nxt
        return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(q)))
    return None


def _message(resp: Response, scrub: Callable[[str], str]) -> str:
    """The API's own words, scrubbed whole and only then cut (a cut first could split a credential)."""
    text = scrub(resp.body.decode("utf-8", "replace"))
    try:
        data = json.loads(text or "null")
    except ValueError:
        return text[:200]
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error") or data)[:300]
    return str(data)[:300]


def _hint(status: int) -> str | None:
    return {
        401: "the token was refused: check that it is set and not expired",
        403: "the token lacks a permission (see the permissions in docs/platforms.md), or this is a fork's read-only token",
        404: "the repository, pull request or project was not found, or the token cannot see it",
    }.get(status)
