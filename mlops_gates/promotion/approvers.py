"""Who may promote: user names, and teams ("@org/team" on GitHub, "@group/subgroup" on GitLab) whose
membership the CI platform's API confirms. Anything that cannot be confirmed does not allow."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping

from mlops_gates.platforms.http import Http, PublishError


def _github(env: Mapping[str, str], token: str, team: str, actor: str) -> bool:
    org, _, slug = team.partition("/")
    http = Http(
        env.get("GITHUB_API_URL", "https://api.github.com"),
        {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"},
        secrets=(token,),
        retries=2,
    )
    q = urllib.parse.quote
    r = http.request(
        "GET", f"/orgs/{q(org)}/teams/{q(slug)}/memberships/{q(actor)}", ok=lambda r: r.status in (200, 404)
    )
    return r.status == 200 and (r.json() or {}).get("state") == "active"


def _gitlab(env: Mapping[str, str], token: str, team: str, actor: str) -> bool:
    http = Http(
        env.get("CI_API_V4_URL", "https://gitlab.com/api/v4"),
        {"PRIVATE-TOKEN": token},
        secrets=(token,),
        retries=2,
    )
    gid = urllib.parse.quote(team, safe="")  # the group's full path
    # members/all includes those who inherit membership from an ancestor group; query narrows by name
    found = http.request("GET", f"/groups/{gid}/members/all", params={"query": actor}).json() or []
    return any(m.get("username", "").lower() == actor.lower() and m.get("state") == "active" for m in found)


def allowed(actor: str, approvers: tuple[str, ...], env: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """(may act, why): a listed user, or a member of a listed team on the platform this runs on."""
    e = dict(os.environ if env is None else env)
    if actor.lower() in {a.lower() for a in approvers if not a.startswith("@")}:
        return True, f"{actor} is an approver"
    teams = [a[1:] for a in approvers if a.startswith("@")]
    if not teams:
        return False, f"{actor} is not one of the approvers ({', '.join(approvers)})"
    if e.get("GITHUB_ACTIONS") == "true":
        check, token_name = _github, "GITHUB_TOKEN"
    elif e.get("GITLAB_CI") == "true":
        check, token_name = _gitlab, "GITLAB_TOKEN"
    else:
        return False, f"{actor} is not a listed user, and team membership can only be checked in CI"
    token = e.get(token_name, "")
    if not token:
        return False, f"${token_name} is not set, so membership of {', '.join(teams)} cannot be checked"
    for team in teams:
        try:
            if check(e, token, team, actor):
                return True, f"{actor} is a member of @{team}"
        except PublishError as exc:
            return False, f"membership of @{team} could not be checked: {exc.message}"
    return False, f"{actor} is not one of the approvers ({', '.join(approvers)})"
