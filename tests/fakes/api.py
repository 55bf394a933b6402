"""Fake GitHub and GitLab REST APIs on loopback: the endpoints the drivers use, with pagination, rate limits,
server errors and other users' comments, so the drivers are tested against a real HTTP exchange."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Fault:
    """Answer the next `times` requests matching method and path with this status, headers and body."""

    method: str
    path: str  # a regular expression on the path
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    times: int = 1


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any


class FakeAPI:
    """A threaded HTTP server on 127.0.0.1; subclasses add routes as (method, regex) -> handler."""

    routes: list[tuple[str, str, str]] = []  # (method, pattern, handler name)
    per_page_default = 30

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _serve(self) -> None:
                outer._handle(self)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        call = Call(
            h.command,
            parts.path,
            {k: v[-1] for k, v in parse_qs(parts.query).items()},
            {k.lower(): v for k, v in h.headers.items()},
            body,
        )
        with self.lock:
            self.calls.append(call)
            fault = next(
                (f for f in self.faults if f.method == h.command and re.fullmatch(f.path, parts.path)), None
            )
            if fault:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
        if fault:
            return self._send(h, fault.status, fault.body, fault.headers)
        auth = self.authenticate(call)
        if auth is None:
            return self._send(h, 401, {"message": "Bad credentials"})
        for method, pattern, name in self.routes:
            m = re.fullmatch(pattern, parts.path)
            if method == h.command and m:
                with self.lock:
                    status, payload, headers = getattr(self, name)(call, auth, *m.groups())
                return self._send(h, status, payload, headers)
        self._send(h, 404, {"message": "Not Found"})

    def _send(
        self, h: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        data = (
            b""
            if payload is None
            else payload
            if isinstance(payload, bytes)
            else json.dumps(payload).encode()
        )
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def authenticate(self, call: Call) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def page(self, call: Call, items: list[Any]) -> tuple[list[Any], int, int]:
        per = min(int(call.query.get("per_page", self.per_page_default)), 100)
        page = int(call.query.get("page", 1))
        last = max(1, -(-len(items) // per))
        return items[(page - 1) * per : page * per], page, last


class FakeGitHub(FakeAPI):
    routes = [
        ("GET", r"/user", "get_user"),
        ("GET", r"/repos/([^/]+/[^/]+)/pulls/(\d+)", "get_pull"),
        ("GET", r"/repos/([^/]+/[^/]+)/issues/(\d+)/comments", "list_comments"),
        ("POST", r"/repos/([^/]+/[^/]+)/issues/(\d+)/comments", "create_comment"),
        ("PATCH", r"/repos/([^/]+/[^/]+)/issues/comments/(\d+)", "update_comment"),
        ("POST", r"/repos/([^/]+/[^/]+)/statuses/([0-9a-f]{40})", "create_status"),
        ("POST", r"/repos/([^/]+/[^/]+)/check-runs", "create_check_run"),
        ("GET", r"/orgs/([^/]+)/teams/([^/]+)/memberships/([^/]+)", "get_membership"),
    ]

    def __init__(self, tokens: dict[str, str], heads: dict[int, str]) -> None:
        super().__init__()
        self.tokens = tokens  # token -> login; a login of github-actions[bot] cannot call GET /user
        self.heads = heads  # PR number -> head SHA
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.statuses: list[dict[str, Any]] = []
        self.check_runs: list[dict[str, Any]] = []
        self.teams: dict[str, set[str]] = {}  # "org/slug" -> logins
        self.next_id = 1000

    def authenticate(self, call: Call) -> str | None:
        auth = call.headers.get("authorization", "")
        return self.tokens.get(auth.removeprefix("Bearer ").strip()) if auth.startswith("Bearer ") else None

    def get_user(self, call: Call, login: str) -> tuple:
        if login == "github-actions[bot]":
            return 403, {"message": "Resource not accessible by integration"}, {}
        return 200, {"login": login, "type": "User"}, {}

    def get_pull(self, call: Call, login: str, repo: str, n: str) -> tuple:
        if int(n) not in self.heads:
            return 404, {"message": "Not Found"}, {}
        return 200, {"number": int(n), "head": {"sha": self.heads[int(n)]}}, {}

    def add_comment(self, pr: int, login: str, body: str) -> dict[str, Any]:
        self.next_id += 1
        c = {
            "id": self.next_id,
            "body": body,
            "user": {"login": login, "type": "Bot" if "[bot]" in login else "User"},
            "html_url": f"https://github.example/pr/{pr}#issuecomment-{self.next_id}",
        }
        self.comments.setdefault(pr, []).append(c)
        return c

    def list_comments(self, call: Call, login: str, repo: str, n: str) -> tuple:
        items, page, last = self.page(call, self.comments.get(int(n), []))
        headers = {}
        if page < last:
            base = f"{self.url}{call.path}?per_page={call.query.get('per_page', self.per_page_default)}"
            headers["Link"] = f'<{base}&page={page + 1}>; rel="next", <{base}&page={last}>; rel="last"'
        return 200, items, headers

    COMMENT_LIMIT, DESCRIPTION_LIMIT = 65_536, 140  # GitHub refuses longer bodies and descriptions (422)

    @staticmethod
    def _too_long(field: str, value: str, limit: int) -> tuple | None:
        if len(value or "") <= limit:
            return None
        return (
            422,
            {
                "message": "Validation Failed",
                "errors": [
                    {
                        "field": field,
                        "code": "custom",
                        "message": f"{field} is too long (maximum is {limit} characters)",
                    }
                ],
            },
            {},
        )

    def create_comment(self, call: Call, login: str, repo: str, n: str) -> tuple:
        refused = self._too_long("body", call.body["body"], self.COMMENT_LIMIT)
        return refused or (201, self.add_comment(int(n), login, call.body["body"]), {})

    def update_comment(self, call: Call, login: str, repo: str, cid: str) -> tuple:
        refused = self._too_long("body", call.body["body"], self.COMMENT_LIMIT)
        if refused:
            return refused
        for comments in self.comments.values():
            for c in comments:
                if c["id"] == int(cid):
                    if c["user"]["login"] != login:
                        return 403, {"message": "You cannot edit another user's comment"}, {}
                    c["body"] = call.body["body"]
                    return 200, c, {}
        return 404, {"message": "Not Found"}, {}

    def create_status(self, call: Call, login: str, repo: str, sha: str) -> tuple:
        refused = self._too_long("description", call.body.get("description", ""), self.DESCRIPTION_LIMIT)
        if refused:
            return refused
        self.statuses.append({"sha": sha, **call.body})
        return 201, {"id": len(self.statuses), **call.body}, {}

    def create_check_run(self, call: Call, login: str, repo: str) -> tuple:
        refused = self._too_long("summary", call.body["output"]["summary"], self.COMMENT_LIMIT - 1)
        if refused:
            return refused
        self.check_runs.append(call.body)
        return 201, {"id": len(self.check_runs), **call.body}, {}

    def get_membership(self, call: Call, login: str, org: str, slug: str, user: str) -> tuple:
        if login == "github-actions[bot]":  # GITHUB_TOKEN cannot read an organisation's teams
            return 403, {"message": "Resource not accessible by integration"}, {}
        if user not in self.teams.get(f"{org}/{slug}", set()):
            return 404, {"message": "Not Found"}, {}
        return 200, {"state": "active", "role": "member", "url": f"{self.url}{call.path}"}, {}


class FakeGitLab(FakeAPI):
    routes = [
        ("GET", r"/api/v4/user", "get_user"),
        ("GET", r"/api/v4/projects/([^/]+)/merge_requests/(\d+)/notes", "list_notes"),
        ("POST", r"/api/v4/projects/([^/]+)/merge_requests/(\d+)/notes", "create_note"),
        ("PUT", r"/api/v4/projects/([^/]+)/merge_requests/(\d+)/notes/(\d+)", "update_note"),
        ("POST", r"/api/v4/projects/([^/]+)/statuses/([0-9a-f]{40})", "create_status"),
        ("GET", r"/api/v4/groups/([^/]+)/members/all", "list_members"),
    ]
    per_page_default = 20

    def __init__(self, tokens: dict[str, int]) -> None:
        super().__init__()
        self.tokens = tokens  # token -> user id
        self.notes: dict[int, list[dict[str, Any]]] = {}
        self.statuses: list[dict[str, Any]] = []
        self.users: dict[str, int] = {}  # username -> id
        self.groups: dict[str, set[int]] = {}  # full path -> member ids (direct or inherited)
        self.next_id = 500

    def authenticate(self, call: Call) -> int | None:
        return self.tokens.get(call.headers.get("private-token", ""))

    def get_user(self, call: Call, uid: int) -> tuple:
        return 200, {"id": uid, "username": f"user{uid}"}, {}

    def add_note(self, mr: int, uid: int, body: str) -> dict[str, Any]:
        self.next_id += 1
        n = {"id": self.next_id, "body": body, "author": {"id": uid}}
        self.notes.setdefault(mr, []).append(n)
        return n

    def list_notes(self, call: Call, uid: int, project: str, mr: str) -> tuple:
        items, page, last = self.page(call, self.notes.get(int(mr), []))
        return 200, items, ({"x-next-page": str(page + 1)} if page < last else {"x-next-page": ""})

    NOTE_LIMIT = 1_000_000  # GitLab refuses a longer note body

    def create_note(self, call: Call, uid: int, project: str, mr: str) -> tuple:
        if len(call.body["body"]) > self.NOTE_LIMIT:
            return 400, {"message": {"note": ["is too long (maximum is 1000000 characters)"]}}, {}
        return 201, self.add_note(int(mr), uid, call.body["body"]), {}

    def update_note(self, call: Call, uid: int, project: str, mr: str, nid: str) -> tuple:
        for n in self.notes.get(int(mr), []):
            if n["id"] == int(nid):
                if n["author"]["id"] != uid:
                    return 403, {"message": "403 Forbidden"}, {}
                n["body"] = call.body["body"]
                return 200, n, {}
        return 404, {"message": "404 Not found"}, {}

    def create_status(self, call: Call, uid: int, project: str, sha: str) -> tuple:
        prior = [s for s in self.statuses if s["sha"] == sha and s.get("name") == call.body.get("name")]
        if prior and prior[-1]["state"] == call.body["state"]:
            return (
                400,
                {"message": f"Cannot transition status via :{call.body['state']} from :{call.body['state']}"},
                {},
            )
        self.statuses.append({"sha": sha, **call.body})
        return 201, {"id": len(self.statuses), **call.body}, {}

    def list_members(self, call: Call, uid: int, group: str) -> tuple:
        from urllib.parse import unquote

        q = call.query.get("query", "").lower()
        members = [  # GitLab's query matches name or username, not only exactly
            {"id": i, "username": name, "state": "active", "access_level": 30}
            for name, i in self.users.items()
            if i in self.groups.get(unquote(group), set()) and q in name.lower()
        ]
        return 200, members, {}
