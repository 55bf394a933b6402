"""The adapter interface: a loaded model that turns a batch of features into probabilities or values."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from mlops_gates.errors import GateError
from mlops_gates.models import FORMATS


@dataclass(frozen=True)
class ModelSpec:
    path: Path
    format: str = "auto"
    trust: str | None = None  # "pickle": allow pickle/joblib files (never on a fork's pull request)
    model_class: str | None = None  # "package.module:Class", for weights-only formats
    init: dict[str, Any] = field(default_factory=dict, hash=False)
    features: tuple[str, ...] | None = None
    device: str = "cpu"
    batch_size: int = 4096
    output: str = "auto"  # auto | probabilities | logits (torch classifiers)


@dataclass(frozen=True)
class Task:
    kind: str  # binary | multiclass | regression
    positive_label: Any = None
    classes: tuple[Any, ...] = ()


class Adapter(Protocol):
    features: list[str] | None  # the columns it needs, in order (None: the caller's choice)

    def predict(self, batch: pa.RecordBatch, columns: list[str]) -> np.ndarray:
        """Probabilities (rows x classes; binary: rows x 1, the positive class) or values (rows,)."""
        ...


def detect_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".skops"):
        return "skops"
    if name.endswith((".pkl", ".pickle")):
        return "pickle"
    if name.endswith(".joblib"):
        return "joblib"
    if name.endswith(".pt2"):
        return "torch-export"
    if name.endswith(".safetensors"):
        return "safetensors"
    if name.endswith((".pt", ".pth")):
        import zipfile

        try:
            names = zipfile.ZipFile(path).namelist()
        except (zipfile.BadZipFile, OSError):
            raise GateError(
                "is not a readable PyTorch archive (truncated or corrupt?)",
                where=str(path),
                hint="save it again with torch.jit.save, torch.export.save or safetensors",
            ) from None
        return "torchscript" if any("/code/" in n for n in names) else "torch-state-dict"
    raise GateError(
        "model format not recognised",
        where=str(path),
        hint=f"use .skops, .pt2, .safetensors or a TorchScript .pt, or set format: one of {', '.join(FORMATS[1:])}",
    )


def model_file(path: Path) -> Path:
    """The model file in a pinned copy: the file itself, or the one model file in a folder."""
    if path.is_file():
        return path
    exts = (".skops", ".pkl", ".pickle", ".joblib", ".pt2", ".safetensors", ".pt", ".pth")
    found = sorted(p for p in path.rglob("*") if p.is_file() and p.name.lower().endswith(exts))
    if len(found) != 1:
        raise GateError(
            f"expected one model file in the folder, found {len(found)}",
            where=str(path),
            hint="point at the model file itself",
        )
    return found[0]


def untrusted_source(env: dict[str, str] | None = None) -> str | None:
    """Why this run must not load pickles: a pull request from a fork, or MLOPS_GATES_UNTRUSTED set."""
    from mlops_gates.platforms.base import load_event

    e = dict(os.environ if env is None else env)
    if e.get("MLOPS_GATES_UNTRUSTED", "").lower() in ("1", "true", "yes"):
        return "MLOPS_GATES_UNTRUSTED is set"
    if e.get("GITHUB_ACTIONS") == "true":
        event = load_event(e.get("GITHUB_EVENT_PATH"))
        pr = event.get("pull_request") or {}
        head, base = (pr.get("head") or {}).get("repo") or {}, (pr.get("base") or {}).get("repo") or {}
        if pr and (head.get("fork") or head.get("full_name") != base.get("full_name")):
            return "this is a pull request from a fork"
        run = event.get("workflow_run") or {}
        if run and (run.get("head_repository") or {}).get("full_name") != (event.get("repository") or {}).get(
            "full_name"
        ):
            return "this run is about a fork's code"
    if e.get("GITLAB_CI") == "true":
        src, tgt = (
            e.get("CI_MERGE_REQUEST_SOURCE_PROJECT_ID"),
            e.get("CI_MERGE_REQUEST_PROJECT_ID") or e.get("CI_PROJECT_ID"),
        )
        if src and tgt and src != tgt:
            return "this is a merge request from a fork"
    return None


def load(spec: ModelSpec, path: Path, task: Task) -> Adapter:
    """Load the pinned file with the adapter its format needs; refuses anything unsafe, with the reason."""
    fmt = detect_format(path) if spec.format == "auto" else spec.format
    if fmt in ("skops", "pickle", "joblib"):
        from mlops_gates.models.sklearn_adapter import load_sklearn

        return load_sklearn(spec, path, fmt, task)
    from mlops_gates.models.torch_adapter import load_torch

    return load_torch(spec, path, fmt, task)
