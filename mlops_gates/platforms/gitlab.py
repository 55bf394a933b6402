"""GitLab: one sticky MR note, a commit status per gate, and files for the MR widgets (JUnit, Code Quality)
and for later jobs (dotenv). Works with self-managed GitLab (CI_API_V4_URL)."""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_gates.errors import GateError, PublishError
from mlops_gates.platforms.base import Published, status_lines
from mlops_gates.platforms.http import Http, Response
from mlops_gates.report.code_quality import code_quality
from mlops_gates.report.markdown import MARKER, fit

NOTE_LIMIT = 1_000_000  # GitLab's limit on a note's body, in characters

NO_JOB_TOKEN = (
    "GitLab's job token (CI_JOB_TOKEN) cannot post merge-request notes or commit statuses: create a project "
    "access token with the 'api' scope (role Reporter or higher; Developer for statuses), store it as a masked "
    "CI/CD variable named GITLAB_TOKEN, or name another with --token-env"
)


def dotenv(rec: dict[str, Any], out_dir: Path) -> str:
    return (
        f"MLOPS_GATES_DECISION={rec['decision']}\nMLOPS_GATES_RECORD={out_dir / 'decision.json'}\n"
        f"MLOPS_GATES_REPORT={out_dir / 'report.md'}\n"
    )


def _repeated_state(resp: Response) -> bool:
    """GitLab answers 400 when a status is posted twice in the same state; the status is already right."""
    return resp.status == 400 and b"Cannot transition status" in resp.body


# ---------------------------------------------------------------- facts of a GitLab CI job
NAME = "gitlab"
TITLE = "GitLab"
TOKEN_ENV = "GITLAB_TOKEN"
NO_ID_TOKEN = "add `id_tokens: {SIGSTORE_ID_TOKEN: {aud: sigstore}}` to the job, or sign with --key"


def here(env: Mapping[str, str]) -> bool:
    return env.get("GITLAB_CI") == "true"


def context(env: Mapping[str, str]) -> dict[str, Any]:
    mr = env.get("CI_MERGE_REQUEST_IID")
    return {
        "platform": NAME,
        "repository": env.get("CI_PROJECT_PATH"),
        "commit": env.get("CI_COMMIT_SHA"),
        "ref": env.get("CI_COMMIT_REF_NAME"),
        "merge_request": int(mr) if mr and mr.isdigit() else None,
        "run_url": env.get("CI_JOB_URL") or env.get("CI_PIPELINE_URL"),
        "actor": env.get("GITLAB_USER_LOGIN"),
        "author": env.get("GITLAB_USER_LOGIN"),
    }


def untrusted(env: Mapping[str, str]) -> str | None:
    """A merge request from a fork runs in the target project with the fork's code."""
    src = env.get("CI_MERGE_REQUEST_SOURCE_PROJECT_ID")
    tgt = env.get("CI_MERGE_REQUEST_PROJECT_ID") or env.get("CI_PROJECT_ID")
    return "this is a merge request from a fork" if src and tgt and src != tgt else None


def actor(env: Mapping[str, str]) -> str | None:
    return env.get("GITLAB_USER_LOGIN") or None


def no_identity_token(env: Mapping[str, str], why: str = "") -> GateError:
    return GateError("no identity token for keyless signing" + (f": {why}" if why else ""), hint=NO_ID_TOKEN)


def is_member(env: Mapping[str, str], token: str, team: str, user: str) -> bool:
    """Is `user` an active member of the group (full path), directly or through an ancestor group?"""
    http = Http(
        env.get("CI_API_V4_URL", "https://gitlab.com/api/v4"),
        {"PRIVATE-TOKEN": token},
        secrets=(token,),
        retries=2,
    )
    gid = urllib.parse.quote(team, safe="")
    # members/all includes those who inherit membership from an ancestor group; query narrows by name
    found = http.request("GET", f"/groups/{gid}/members/all", params={"query": user}).json() or []
    return any(m.get("username", "").lower() == user.lower() and m.get("state") == "active" for m in found)


# ---------------------------------------------------------------- the publishing driver
@dataclass
class GitLab:
    env: dict[str, str] = field(repr=False)
    token_env: str = "GITLAB_TOKEN"
    http: Http | None = field(default=None, repr=False)
    name: str = "gitlab"

    def __post_init__(self) -> None:
        self.project = urllib.parse.quote(
            self.env.get("CI_PROJECT_ID") or self.env.get("CI_PROJECT_PATH", ""), safe=""
        )
        self.mr = self.env.get("CI_MERGE_REQUEST_IID")
        if self.http is None:
            token = self.env.get(self.token_env, "")
            if not token:
                raise PublishError(f"no token in ${self.token_env}", hint=NO_JOB_TOKEN)
            if token == self.env.get("CI_JOB_TOKEN"):
                raise PublishError(f"${self.token_env} holds the job token", hint=NO_JOB_TOKEN)
            self.http = Http(
                self.env.get("CI_API_V4_URL", "https://gitlab.com/api/v4"),
                {"PRIVATE-TOKEN": token},
                secrets=(token,),
            )
        self.http.error = PublishError  # a failure here is a publishing failure (exit 4 with --strict)

    def _api(self) -> Http:
        assert self.http is not None
        return self.http

    def subject(self, rec: dict[str, Any]) -> tuple[str, int | None]:
        ci = rec.get("ci") or {}
        sha = ci.get("commit")
        here = self.env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_SHA") or self.env.get("CI_COMMIT_SHA")
        if not sha:
            raise PublishError(
                "the record has no commit to post on (it was not made in CI)",
                hint="run evaluate in the pipeline",
            )
        if here and sha != here:
            raise PublishError(
                f"the record is about {sha[:12]}, this pipeline about {here[:12]}",
                hint="publish the record this pipeline made",
            )
        mr = ci.get("merge_request")
        if mr is not None and self.mr and str(mr) != self.mr:
            raise PublishError(
                f"the record is about MR !{mr}, this pipeline about !{self.mr}",
                hint="publish the record this pipeline made",
            )
        return sha, mr

    def note(self, mr: int, body: str) -> tuple[str, str | None]:
        body = fit(body, NOTE_LIMIT)
        api = self._api()
        me = api.request("GET", "user").json()["id"]
        base = f"projects/{self.project}/merge_requests/{mr}/notes"
        for n in api.paginate(base, {"sort": "asc", "order_by": "created_at"}):
            if MARKER in (n.get("body") or "") and (n.get("author") or {}).get("id") == me:
                api.request("PUT", f"{base}/{n['id']}", json_body={"body": body})
                return "updated", None
        api.request("POST", base, json_body={"body": body})
        return "created", None

    def statuses(self, rec: dict[str, Any], sha: str) -> int:
        target = (rec.get("ci") or {}).get("run_url")
        ref = self.env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME") or self.env.get("CI_COMMIT_REF_NAME")
        lines = status_lines(rec)
        for line in lines:
            body: dict[str, Any] = {
                "state": "success" if line.outcome == "success" else "failed",
                "name": line.context,
                "description": line.description,
            }
            if target:
                body["target_url"] = target
            if ref:
                body["ref"] = ref
            self._api().request(
                "POST", f"projects/{self.project}/statuses/{sha}", json_body=body, ok=_repeated_state
            )
        return len(lines)

    def local_files(self, rec: dict[str, Any], out_dir: Path) -> dict[str, Path]:
        files = {"code_quality": out_dir / "gl-code-quality.json", "dotenv": out_dir / "mlops-gates.env"}
        files["code_quality"].write_text(json.dumps(code_quality(rec), indent=2) + "\n")
        files["dotenv"].write_text(dotenv(rec, out_dir))
        return files

    def publish(self, rec: dict[str, Any], report: str, out_dir: Path) -> Published:
        result = Published(self.name, files=self.local_files(rec, out_dir))
        sha, mr = self.subject(rec)
        if mr is not None:
            result.comment, result.comment_url = self.note(int(mr), report)
        result.statuses = self.statuses(rec, sha)
        return result


def from_env(env: dict[str, str] | None = None, **kw: Any) -> GitLab:
    return GitLab(dict(os.environ if env is None else env), **kw)
