"""Check the requests a driver sent against the platform's published OpenAPI description (openapi-core)."""

from __future__ import annotations

import json
import os
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.api import Call

ROOT = Path(__file__).resolve().parents[2]
OCTOKIT = (
    ROOT / ".cache" / "npm" / "node_modules" / "@octokit" / "openapi" / "generated" / "api.github.com.json"
)
GITLAB = ROOT / "tests" / "assets" / "specs" / "gitlab-openapi3.yaml"


def available(kind: str) -> bool:
    """Whether the platform's description is here; in CI it must be (make test installs GitHub's)."""
    path = OCTOKIT if kind == "github" else GITLAB
    if not path.is_file() and os.environ.get("CI") == "true":
        pytest.fail(
            f"{path} is missing in CI: make test installs npm @octokit/openapi@23.0.2 into .cache/npm"
        )
    return path.is_file()


@cache
def _openapi(kind: str) -> Any:
    from openapi_core import Config, OpenAPI

    if kind == "github":
        spec = json.loads(OCTOKIT.read_text())
    else:
        import yaml

        spec = yaml.load(GITLAB.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    spec["servers"] = [{"url": "http://fake"}]
    # the descriptions are large and partly invalid (GitLab's 'type: text'): validate requests, not the document
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


class _Request:
    def __init__(self, call: Call):
        from openapi_core.datatypes import RequestParameters

        self.host_url = "http://fake"
        self.path = call.path
        self.method = call.method.lower()
        self.parameters = RequestParameters(query=dict(call.query), header=dict(call.headers), cookie={})
        self.content_type = "application/json"
        self.body = None if call.body is None else json.dumps(call.body).encode()


def validate(kind: str, calls: list[Call], *, bodiless: bool = False) -> int:
    """Validate every request with a body (with bodiless, every request: its path and query too); returns how
    many were checked (raises on the first invalid one)."""
    if not available(kind):  # outside CI without the description: the test's other assertions still run
        warnings.warn(f"{kind}'s OpenAPI description is missing: requests not validated", stacklevel=2)
        return 0
    api = _openapi(kind)
    checked = 0
    for call in calls:
        if call.body is None and not bodiless:
            continue
        api.validate_request(_Request(call))
        checked += 1
    return checked
