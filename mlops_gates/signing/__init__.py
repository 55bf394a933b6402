"""Sign models and gate decisions (OpenSSF model-signing v1.0 format, in-toto statements, Sigstore bundles),
and verify them offline."""

from __future__ import annotations

import importlib
from typing import Any

from mlops_gates.errors import GateError


def need(module: str) -> Any:
    """Import a signing dependency, or say which extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise GateError(
            f"signing needs {module.split('.')[0]}, which is not installed",
            hint="pip install 'mlops-gates[signing]'",
        ) from None
