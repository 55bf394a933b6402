"""Who may promote: user names, and teams ("@org/team" on GitHub, "@group/subgroup" on GitLab) whose
membership the CI platform's API confirms. Anything that cannot be confirmed does not allow."""

from __future__ import annotations

import os
from collections.abc import Mapping

from mlops_gates.errors import RemoteError
from mlops_gates.platforms import ci


def allowed(
    actor: str,
    approvers: tuple[str, ...],
    env: Mapping[str, str] | None = None,
    called: str = "the approvers",
) -> tuple[bool, str]:
    """(may act, why): a listed user, or a member of a listed team on the platform this runs on. `called`: what
    the list is, for the reason (the approvers, a role's members)."""
    e = dict(os.environ if env is None else env)
    if actor.lower() in {a.lower() for a in approvers if not a.startswith("@")}:
        return True, f"{actor} is one of {called}"
    teams = [a[1:] for a in approvers if a.startswith("@")]
    if not teams:
        return False, f"{actor} is not one of {called} ({', '.join(approvers)})"
    if ci.current(e) is None:
        return False, f"{actor} is not a listed user, and team membership can only be checked in CI"
    for team in teams:
        try:
            member, why = ci.is_member(e, team, actor)
        except RemoteError as exc:
            return False, f"membership of @{team} could not be checked: {exc.message}"
        if member is None:
            return False, f"{why}, so membership of {', '.join(teams)} cannot be checked"
        if member:
            return True, f"{actor} is a member of @{team}"
    return False, f"{actor} is not one of {called} ({', '.join(approvers)})"
