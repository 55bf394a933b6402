"""GitHub: one sticky PR comment, a commit status per gate on the PR's head SHA, an optional check run, the
step summary, step outputs and error annotations. Works with GitHub Enterprise Server (GITHUB_API_URL)."""

from __future__ import annotations

import os
import sys
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_gates.errors import GateError, PublishError
from mlops_gates.platforms.base import Published, load_event, status_lines
from mlops_gates.platforms.http import Http
from mlops_gates.report.markdown import LIMIT, MARKER, fit

BOT = "github-actions[bot]"  # who GITHUB_TOKEN's comments are by; GET /user is closed to that token


def escape_data(s: str) -> str:
    """Workflow-command escaping of a message, so a newline or % cannot inject another command."""
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(s: str) -> str:
    return escape_data(s).replace(":", "%3A").replace(",", "%2C")


# ---------------------------------------------------------------- facts of a GitHub Actions run
NAME = "github"
TITLE = "GitHub"
TOKEN_ENV = "GITHUB_TOKEN"
NO_ID_TOKEN = (
    "give the job `permissions: id-token: write`; a pull request from a fork gets no identity token, so sign "
    "in a workflow that runs on push, release or workflow_run, or sign with --key"
)


def here(env: Mapping[str, str]) -> bool:
    return env.get("GITHUB_ACTIONS") == "true"


def context(env: Mapping[str, str]) -> dict[str, Any]:
    """Where this run happened; on a pull request, its head commit and author (not the merge commit's)."""
    server = env.get("GITHUB_SERVER_URL", "https://github.com")
    repo = env.get("GITHUB_REPOSITORY")
    pr = load_event(env.get("GITHUB_EVENT_PATH")).get("pull_request") or {}
    return {
        "platform": NAME,
        "repository": repo,
        "commit": (pr.get("head") or {}).get("sha") or env.get("GITHUB_SHA"),
        "ref": env.get("GITHUB_REF"),
        "pull_request": pr.get("number"),
        "run_url": f"{server}/{repo}/actions/runs/{env['GITHUB_RUN_ID']}"
        if repo and env.get("GITHUB_RUN_ID")
        else None,
        "actor": env.get("GITHUB_ACTOR"),  # who ran it
        "author": (pr.get("user") or {}).get("login") or env.get("GITHUB_ACTOR"),  # whose change it is
    }


def untrusted(env: Mapping[str, str]) -> str | None:
    """Why this run is about someone else's code: a pull request from a fork, or a workflow_run of one."""
    event = load_event(env.get("GITHUB_EVENT_PATH"))
    pr = event.get("pull_request") or {}
    head, base = (pr.get("head") or {}).get("repo") or {}, (pr.get("base") or {}).get("repo") or {}
    if pr and (head.get("fork") or head.get("full_name") != base.get("full_name")):
        return "this is a pull request from a fork"
    run = event.get("workflow_run") or {}
    if run and (run.get("head_repository") or {}).get("full_name") != (event.get("repository") or {}).get(
        "full_name"
    ):
        return "this run is about a fork's code"
    return None


def actor(env: Mapping[str, str]) -> str | None:
    """Who triggered this run (GITHUB_TRIGGERING_ACTOR differs from GITHUB_ACTOR on a re-run)."""
    return env.get("GITHUB_TRIGGERING_ACTOR") or env.get("GITHUB_ACTOR") or None


def no_identity_token(env: Mapping[str, str], why: str = "") -> GateError:
    fork = env.get("GITHUB_EVENT_NAME", "").startswith("pull_request")
    return GateError(
        "no identity token for keyless signing"
        + (" (this looks like a pull request, which may come from a fork)" if fork else "")
        + (f": {why}" if why else ""),
        hint=NO_ID_TOKEN,
    )


def is_member(env: Mapping[str, str], token: str, team: str, user: str) -> bool:
    """Is `user` an active member of the team "org/slug"? (the token needs read:org)."""
    org, _, slug = team.partition("/")
    http = Http(
        env.get("GITHUB_API_URL", "https://api.github.com"),
        {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"},
        secrets=(token,),
        retries=2,
    )
    q = urllib.parse.quote
    r = http.request(
        "GET", f"/orgs/{q(org)}/teams/{q(slug)}/memberships/{q(user)}", ok=lambda r: r.status in (200, 404)
    )
    return r.status == 200 and (r.json() or {}).get("state") == "active"


# ---------------------------------------------------------------- the publishing driver
@dataclass
class GitHub:
    env: dict[str, str] = field(repr=False)
    token_env: str = "GITHUB_TOKEN"
    check_run: bool = False
    http: Http | None = field(default=None, repr=False)
    name: str = "github"

    def __post_init__(self) -> None:
        self.repo = self.env.get("GITHUB_REPOSITORY", "")
        self.event_name = self.env.get("GITHUB_EVENT_NAME", "")
        self.event = load_event(self.env.get("GITHUB_EVENT_PATH"))
        if self.http is None:
            token = self.env.get(self.token_env, "")
            if not token:
                raise PublishError(
                    f"no token in ${self.token_env}",
                    hint="pass the token to the step: env: GITHUB_TOKEN: ${{ github.token }} (or name another with --token-env)",
                )
            self.http = Http(
                self.env.get("GITHUB_API_URL", "https://api.github.com"),
                {
                    "Authorization": f"Bearer {token}",
                    "Accept": "application/vnd.github+json",
                    "X-GitHub-Api-Version": "2022-11-28",
                },
                secrets=(token,),
            )
        self.http.error = PublishError  # a failure here is a publishing failure (exit 4 with --strict)

    # -------------------------------------------------------------- what the record is about
    def subject(self, rec: dict[str, Any]) -> tuple[str, int | None]:
        """(head SHA, PR number) this record may be posted on; refuses a record about another commit.

        In the fork-safe pattern a `workflow_run` workflow posts a record that a `pull_request` run made:
        the record's head SHA must be the triggering run's, and the PR's head must still be that SHA.
        """
        ci = rec.get("ci") or {}
        sha, pr = ci.get("commit"), ci.get("pull_request")
        if not sha:
            raise PublishError(
                "the record has no commit to post on (it was not made in CI)",
                hint="run evaluate in the workflow, or publish with --platform local",
            )
        if self.event_name == "workflow_run":
            run = self.event.get("workflow_run") or {}
            if run.get("head_sha") != sha:
                raise PublishError(
                    f"the record is about {sha[:12]}, the triggering run about {str(run.get('head_sha'))[:12]}",
                    hint="download the artifact of the run that triggered this workflow",
                )
        elif self.event.get("pull_request"):
            head = self.event["pull_request"]["head"]["sha"]
            number = self.event["pull_request"]["number"]
            if (sha, pr) != (head, number):
                raise PublishError(
                    f"the record is about {sha[:12]} (PR {pr}), this run about {head[:12]} (PR {number})",
                    hint="publish the record this run made",
                )
        if pr is not None:
            live = self._api().request("GET", f"repos/{self.repo}/pulls/{pr}").json()
            if live["head"]["sha"] != sha:
                raise PublishError(
                    f"PR {pr} has moved on to {live['head']['sha'][:12]}; the record is about {sha[:12]}",
                    hint="a newer run will post for the new head",
                )
        return sha, pr

    def _api(self) -> Http:
        assert self.http is not None
        return self.http

    def identity(self) -> str:
        try:
            return str(self._api().request("GET", "user").json()["login"])
        except PublishError as e:
            if e.status in (401, 403, 404):
                return self.env.get("MLOPS_GATES_COMMENT_AUTHOR", BOT)
            raise

    # -------------------------------------------------------------- posting
    def comment(self, pr: int, body: str) -> tuple[str, str | None]:
        """Update our comment that carries the marker, or create it: never a second one, never someone else's."""
        body = fit(body, LIMIT)
        me = self.identity()
        api = self._api()
        for c in api.paginate(f"repos/{self.repo}/issues/{pr}/comments"):
            if MARKER in (c.get("body") or "") and (c.get("user") or {}).get("login") == me:
                r = api.request(
                    "PATCH", f"repos/{self.repo}/issues/comments/{c['id']}", json_body={"body": body}
                )
                return "updated", r.json().get("html_url")
        r = api.request("POST", f"repos/{self.repo}/issues/{pr}/comments", json_body={"body": body})
        return "created", r.json().get("html_url")

    def statuses(self, rec: dict[str, Any], sha: str) -> int:
        target = (rec.get("ci") or {}).get("run_url")
        state = {"success": "success", "failure": "failure", "error": "error"}
        for line in status_lines(rec):
            body: dict[str, Any] = {
                "state": state[line.outcome],
                "context": line.context,
                "description": line.description,
            }
            if target:
                body["target_url"] = target
            self._api().request("POST", f"repos/{self.repo}/statuses/{sha}", json_body=body)
        return len(status_lines(rec))

    def post_check_run(self, rec: dict[str, Any], sha: str, report: str) -> None:
        conclusion = {"PROMOTE": "success", "HOLD": "neutral", "REJECT": "failure"}[rec["decision"]]
        self._api().request(
            "POST",
            f"repos/{self.repo}/check-runs",
            json_body={
                "name": "mlops-gates",
                "head_sha": sha,
                "status": "completed",
                "conclusion": conclusion,
                "output": {"title": f"mlops-gates: {rec['decision']}", "summary": fit(report, LIMIT - 1)},
            },
        )

    def local_files(self, rec: dict[str, Any], report: str, out_dir: Path) -> dict[str, Path]:
        """Step summary, step outputs and annotations: files and stdout of the runner, no API needed."""
        files: dict[str, Path] = {}
        summary = self.env.get("GITHUB_STEP_SUMMARY")
        if summary:
            with open(summary, "a", encoding="utf-8") as f:
                f.write(report + "\n")
            files["step_summary"] = Path(summary)
        output = self.env.get("GITHUB_OUTPUT")
        if output:
            with open(output, "a", encoding="utf-8") as f:
                f.write(
                    f"decision={rec['decision']}\nrecord={out_dir / 'decision.json'}\nreport={out_dir / 'report.md'}\n"
                )
            files["outputs"] = Path(output)
        policy = rec["inputs"]["policy"]["path"]
        for g in rec["gates"]:
            if g["status"] in ("FAIL", "ERROR", "INCONCLUSIVE"):
                print(  # a workflow command on purpose: past the guard that keeps data from issuing one
                    f"::error file={escape_property(policy)},title={escape_property('mlops-gates: ' + g['name'])}::"
                    f"{escape_data(g['status'] + ': ' + g['reason'])}",
                    file=getattr(sys.stdout, "raw", sys.stdout),
                )
        return files

    def publish(self, rec: dict[str, Any], report: str, out_dir: Path) -> Published:
        result = Published(self.name, files=self.local_files(rec, report, out_dir))
        sha, pr = self.subject(rec)
        if pr is not None:
            result.comment, result.comment_url = self.comment(pr, report)
        result.statuses = self.statuses(rec, sha)
        if self.check_run:
            self.post_check_run(rec, sha, report)
        return result


def from_env(env: dict[str, str] | None = None, **kw: Any) -> GitHub:
    return GitHub(dict(os.environ if env is None else env), **kw)
