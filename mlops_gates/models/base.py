"""The adapter interface: a loaded model that turns a batch of features into probabilities or values."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from mlops_gates.errors import GateError
from mlops_gates.models import FORMATS


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
