"""Format -> adapter: the one place that knows which adapter reads which format."""

from __future__ import annotations

from pathlib import Path

from mlops_gates.models.base import Adapter, Task, detect_format
from mlops_gates.policy import ModelSpec


def load(spec: ModelSpec, path: Path, task: Task) -> Adapter:
    """Load the pinned file with the adapter its format needs; refuses anything unsafe, with the reason."""
    fmt = detect_format(path) if spec.format == "auto" else spec.format
    if fmt in ("skops", "pickle", "joblib"):
        from mlops_gates.models.sklearn_adapter import load_sklearn

        return load_sklearn(spec, path, fmt, task)
    from mlops_gates.models.torch_adapter import load_torch

    return load_torch(spec, path, fmt, task)
