"""Threat: a credential reaches a log, a record, an audit entry or another host.

Each case goes through the product's own wiring (the drivers build their clients from the environment, as in
CI) against a loopback API that echoes the credential back: in a 401 text body, at the edge of a long error
message, URL-encoded and base64-encoded, behind a redirect or a pagination link to another origin.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlops_gates.errors import RemoteError
from mlops_gates.platforms.http import Http, secret_forms
from tests.conftest import cli_main
from tests.fakes.api import FakeGitHub, FakeGitLab, Fault
from tests.platforms.test_publish import HEAD, TOKEN, github_env, make_record

GL_TOKEN = "glpat-SECRETsecret0987654321"


def leaked(text: str, secret: str) -> str | None:
    """Any 8 characters of the secret, in any form it travels in, found in `text`."""
    for form in secret_forms(secret) | {secret}:
        for i in range(0, max(1, len(form) - 7)):
            if form[i : i + 8] in text and len(form) >= 8:
                return form[i : i + 8]
    return None


def echoes(secret: str) -> dict[str, bytes | dict]:
    return {
        "401 text": f"Bad credentials: {secret}".encode(),
        "cut at 300": {"message": "x" * 290 + secret + " trailing words"},
        "url-encoded": {"message": "token=" + urllib.parse.quote(secret, safe="")},
        "base64": {"message": "seen " + base64.b64encode(secret.encode()).decode()},
        "json-escaped": json.dumps({"message": f'he said "{secret}"'}).encode(),
    }


@pytest.mark.parametrize("case", sorted(echoes(TOKEN)))
def test_github_driver_never_repeats_the_token(binary_case, tmp_path, monkeypatch, capsys, case):
    folder, _ = binary_case
    with FakeGitHub({TOKEN: "gate-bot"}, {7: HEAD}) as gh:
        env = github_env(tmp_path, gh.url)
        record = make_record(folder, env, monkeypatch)
        gh.faults.append(Fault("GET", r".*/pulls/7", 401, {}, echoes(TOKEN)[case], times=9))
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        code = cli_main(monkeypatch, "publish", str(record), "--strict")
    out, err = capsys.readouterr()
    assert code == 4 and "HTTP 401" in err, err
    for text in (
        out,
        err,
        record.read_text(),
        (tmp_path / "output.txt").read_text() if (tmp_path / "output.txt").exists() else "",
    ):
        assert leaked(text, TOKEN) is None, (case, text[-400:])


@pytest.mark.parametrize("case", sorted(echoes(GL_TOKEN)))
def test_gitlab_driver_never_repeats_the_token(binary_case, monkeypatch, capsys, case):
    folder, _ = binary_case
    with FakeGitLab({GL_TOKEN: 5}) as gl:
        env = {
            "GITLAB_CI": "true",
            "CI_API_V4_URL": gl.url + "/api/v4",
            "CI_PROJECT_ID": "42",
            "CI_MERGE_REQUEST_IID": "3",
            "CI_COMMIT_SHA": HEAD,
            "CI_MERGE_REQUEST_PROJECT_ID": "42",
            "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": "42",
            "GITLAB_TOKEN": GL_TOKEN,
        }
        record = make_record(folder, env, monkeypatch)
        gl.faults.append(Fault("GET", r".*/notes", 403, {}, echoes(GL_TOKEN)[case], times=99))
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        code = cli_main(monkeypatch, "publish", str(record), "--strict")
    out, err = capsys.readouterr()
    assert code == 4 and "HTTP" in err, err
    assert leaked(out + err + record.read_text(), GL_TOKEN) is None, err


class _Other:
    """Another origin on loopback that records what reaches it."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.seen.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"[]")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("how", ["redirect", "link", "absolute path"])
def test_the_credential_never_leaves_the_apis_origin(how):
    other = _Other()
    try:
        with FakeGitHub({TOKEN: "gate-bot"}, {7: HEAD}) as gh:
            http = Http(gh.url, {"Authorization": f"Bearer {TOKEN}"}, sleep=lambda s: None)
            if how == "redirect":
                gh.faults.append(Fault("GET", r".*/comments", 302, {"Location": other.url + "/steal"}))
                call = lambda: list(http.paginate("/repos/acme/models/issues/7/comments"))  # noqa: E731
            elif how == "link":
                link = f'<{other.url}/steal?page=2>; rel="next"'
                gh.faults.append(Fault("GET", r".*/comments", 200, {"Link": link}, []))
                call = lambda: list(http.paginate("/repos/acme/models/issues/7/comments"))  # noqa: E731
            else:
                call = lambda: http.request("GET", other.url + "/steal")  # noqa: E731
            with pytest.raises(RemoteError, match="another origin"):
                call()
    finally:
        other.close()
    assert not other.seen or all("authorization" not in h for h in other.seen)
    assert not other.seen, other.seen


def test_a_page_that_is_not_a_list_is_a_clear_error():
    with FakeGitHub({TOKEN: "gate-bot"}, {7: HEAD}) as gh:
        gh.faults.append(Fault("GET", r".*/comments", 200, {}, {"message": "not a list"}))
        http = Http(gh.url, {"Authorization": f"Bearer {TOKEN}"})
        with pytest.raises(RemoteError, match="expected a list, got dict"):
            list(http.paginate("/repos/acme/models/issues/7/comments"))


def test_basic_auth_forms_are_scrubbed_and_never_in_repr(monkeypatch):
    """MLflow's Basic auth: the pair, its base64 and the password alone are each a secret."""
    from mlops_gates.promotion.mlflow_store import MLflowStore

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ops")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pa55-word-Secret!")
    store = MLflowStore("mlflow+http://127.0.0.1:9")
    pair = base64.b64encode(b"ops:pa55-word-Secret!").decode()
    said = store.http.scrub(
        f"auth Basic {pair}; pass pa55-word-Secret!; q={urllib.parse.quote('pa55-word-Secret!')}"
    )
    assert "pa55" not in said and pair not in said, said
    assert "pa55" not in repr(store.http) and pair not in repr(store.http)


def test_a_server_that_hangs_is_bounded():
    """The timeout applies to each try and max_total to all of them: a hanging API cannot hold the gate."""
    import socket
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections, never answers
    try:
        http = Http(f"http://127.0.0.1:{listener.getsockname()[1]}", {}, timeout=0.3, retries=3, backoff=0.05)
        start = time.monotonic()
        with pytest.raises(RemoteError, match="cannot reach the API after 4 tries"):
            http.request("GET", "/user")
        assert time.monotonic() - start < 5
        bounded = Http(http.base_url, {}, timeout=0.3, retries=50, backoff=0.05, max_total=1.0)
        start = time.monotonic()
        with pytest.raises(RemoteError, match="cannot reach the API"):
            bounded.request("GET", "/user")
        assert time.monotonic() - start < 4
    finally:
        listener.close()


class _TokenEndpoint:
    """GitHub's identity-token endpoint on loopback, refusing with a body that echoes the request token."""

    def __init__(self, body: bytes | dict) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                self.send_response(401)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/token?api-version=2.0"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("case", sorted(echoes(TOKEN)))
def test_identity_token_endpoint_never_repeats_the_request_token(tmp_path, monkeypatch, capsys, case):
    """Keyless signing in GitHub Actions: a refusal that echoes ACTIONS_ID_TOKEN_REQUEST_TOKEN, in any form,
    is reported without it."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\0" * 64)
    endpoint = _TokenEndpoint(echoes(TOKEN)[case])
    try:
        monkeypatch.setenv("GITHUB_ACTIONS", "true")
        monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", endpoint.url)
        monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", TOKEN)
        monkeypatch.delenv("SIGSTORE_ID_TOKEN", raising=False)
        code = cli_main(monkeypatch, "sign", str(model))
    finally:
        endpoint.close()
    out, err = capsys.readouterr()
    assert code == 2 and "OIDC token request failed" in err and "id-token: write" in err, err
    assert leaked(out + err, TOKEN) is None, (case, err)
    assert not (model / "model.sig").exists()
