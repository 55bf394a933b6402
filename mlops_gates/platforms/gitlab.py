"""GitLab: one sticky MR note, a commit status per gate, and files for the MR widgets (JUnit, Code Quality)
and for later jobs (dotenv). Works with self-managed GitLab (CI_API_V4_URL)."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_gates.escape import one_line
from mlops_gates.platforms.base import Published, status_lines
from mlops_gates.platforms.http import Http, PublishError, Response
from mlops_gates.report.markdown import MARKER, fit

NOTE_LIMIT = 1_000_000  # GitLab's limit on a note's body, in characters

NO_JOB_TOKEN = (
    "GitLab's job token (CI_JOB_TOKEN) cannot post merge-request notes or commit statuses: create a project "
    "access token with the 'api' scope (role Reporter or higher; Developer for statuses), store it as a masked "
    "CI/CD variable named GITLAB_TOKEN, or name another with --token-env"
)


def code_quality(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """GitLab Code Quality entries for the MR widget: one per gate that did not pass."""
    severity = {"FAIL": "critical", "ERROR": "blocker", "INCONCLUSIVE": "major", "WARN": "minor"}
    path = rec["inputs"]["policy"]["path"]
    out = []
    for g in rec["gates"]:
        if g["status"] in severity:
            fp = hashlib.sha256(f"{path}\0{g['name']}\0{g['status']}\0{g['reason']}".encode()).hexdigest()
            out.append(
                {
                    "description": one_line(f"mlops-gates {g['name']}: {g['status']}: {g['reason']}")[:1000],
                    "check_name": one_line(f"mlops-gates/{g['name']}"),
                    "fingerprint": fp,
                    "severity": severity[g["status"]],
                    "location": {"path": path, "lines": {"begin": 1}},
                }
            )
    return out


def dotenv(rec: dict[str, Any], out_dir: Path) -> str:
    return (
        f"MLOPS_GATES_DECISION={rec['decision']}\nMLOPS_GATES_RECORD={out_dir / 'decision.json'}\n"
        f"MLOPS_GATES_REPORT={out_dir / 'report.md'}\n"
    )


def _repeated_state(resp: Response) -> bool:
    """GitLab answers 400 when a status is posted twice in the same state; the status is already right."""
    return resp.status == 400 and b"Cannot transition status" in resp.body


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
