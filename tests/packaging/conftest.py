"""The wheel, built once for the packaging tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.packaging.release import build_wheel


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))
