"""Which CI platform this run is on, and its facts, asked of that platform's driver module (github, gitlab):
the one place outside the drivers that knows there is more than one platform."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from mlops_gates.errors import GateError
from mlops_gates.platforms import github, gitlab
from mlops_gates.platforms.base import Driver, Platform
from mlops_gates.platforms.http import secret_forms

DRIVERS: dict[str, Platform] = {"github": github, "gitlab": gitlab}


def _env(env: Mapping[str, str] | None) -> dict[str, str]:
    return dict(os.environ if env is None else env)


def current(env: Mapping[str, str] | None = None) -> Platform | None:
    """The driver module of the platform this runs on; None outside CI."""
    e = _env(env)
    return next((m for m in DRIVERS.values() if m.here(e)), None)


def name(env: Mapping[str, str] | None = None) -> str:
    found = current(env)
    return found.NAME if found else "local"


def context(env: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """Where this run happened (repository, commit, pull/merge request, run URL, actor, author)."""
    e = _env(env)
    found = current(e)
    return found.context(e) if found else None


def untrusted_reason(env: Mapping[str, str] | None = None) -> str | None:
    """Why this run must not load pickles: MLOPS_GATES_UNTRUSTED set, or the platform says the code is a
    fork's."""
    e = _env(env)
    if e.get("MLOPS_GATES_UNTRUSTED", "").lower() in ("1", "true", "yes"):
        return "MLOPS_GATES_UNTRUSTED is set"
    found = current(e)
    return found.untrusted(e) if found else None


def actor(env: Mapping[str, str]) -> tuple[str, str | None] | None:
    """In CI, the platform's word on who is acting: (platform, login). None outside CI."""
    found = current(env)
    if found is None:
        return None
    return found.TITLE, found.actor(env)


def identity_token(env: Mapping[str, str] | None = None) -> str:
    """The OIDC token for keyless signing: SIGSTORE_ID_TOKEN (GitLab's id_tokens, or set by hand), else what the
    CI provider hands out, found by sigstore's `id` package (GitHub Actions, GitLab, Buildkite, CircleCI, Google
    Cloud). Never printed."""
    e = _env(env)
    if e.get("SIGSTORE_ID_TOKEN"):
        return e["SIGSTORE_ID_TOKEN"]
    try:
        from id import IdentityError, detect_credential
    except ImportError:
        raise GateError(
            "keyless signing needs sigstore's packages", hint="pip install 'mlops-gates[signing]'"
        ) from None
    why = ""
    try:
        token = detect_credential("sigstore")
    except IdentityError as exc:
        token, why = None, str(exc)
        request = e.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
        # the endpoint's answer may echo the request token, in any encoding
        for form in sorted(secret_forms(request), key=len, reverse=True) if request else ():
            why = why.replace(form, "***")
    if token:
        return str(token)
    found = current(e)
    if found is not None:
        raise found.no_identity_token(e, why)
    raise GateError(
        "no identity token for keyless signing" + (f": {why}" if why else ""),
        hint="run in CI (GitHub id-token: write, GitLab id_tokens), pass --identity-token, or sign with --key",
    )


def is_member(env: Mapping[str, str], team: str, user: str) -> tuple[bool | None, str]:
    """(member?, why) from the platform's API; None when it cannot be asked (outside CI, no token)."""
    found = current(env)
    if found is None:
        return None, "team membership can only be checked in CI"
    token = env.get(found.TOKEN_ENV, "")
    if not token:
        return None, f"${found.TOKEN_ENV} is not set"
    return found.is_member(env, token, team, user), ""


def driver(
    platform: str, env: dict[str, str], *, token_env: str | None = None, check_run: bool = False
) -> Driver:
    """The publishing driver for `platform` (auto: the one this runs on; local outside CI)."""
    chosen = name(env) if platform == "auto" else platform
    if chosen == "github":
        return github.GitHub(env, token_env=token_env or github.TOKEN_ENV, check_run=check_run)
    if chosen == "gitlab":
        return gitlab.GitLab(env, token_env=token_env or gitlab.TOKEN_ENV)
    from mlops_gates.platforms.local import Local

    return Local()
