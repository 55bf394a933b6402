"""PyTorch models: TorchScript archives, torch.export programs (.pt2), and weights (safetensors, or a
state dict read with weights_only=True) into a model class from the reviewed repository."""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mlops_gates.errors import GateError
from mlops_gates.models.base import Task
from mlops_gates.policy import ModelSpec

CPU_GPU_TOLERANCE = 1e-4  # largest difference in a probability between a CPU and a CUDA run, float32


def _torch(where: str) -> Any:
    if os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"):
        raise GateError(
            "refused: TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is set, which silently lets torch.load run pickled code",
            where=where,
            hint="unset TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD in this job",
        )
    try:
        import torch
    except ImportError:
        raise GateError(
            "this model needs PyTorch, which is not installed",
            where=where,
            hint="pip install 'mlops-gates[torch]' (or torch itself)",
        ) from None
    return torch


def _model_class(spec: ModelSpec) -> Any:
    if not spec.model_class or ":" not in spec.model_class:
        raise GateError(
            "weights alone need the model's class",
            where=str(spec.path),
            hint="set class: package.module:ClassName (code in the reviewed repository) for this model",
        )
    module, _, name = spec.model_class.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # the repository under review, where the class lives
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise GateError(
            f"cannot import the model class {spec.model_class} ({exc})",
            where=str(spec.path),
            hint="run from the repository root, or fix class: in the policy",
        ) from None


def _load_module(spec: ModelSpec, path: Path, fmt: str, torch: Any, device: str) -> Any:
    where = str(spec.path)
    try:
        if fmt == "torchscript":
            return torch.jit.load(str(path), map_location=device)
        if fmt == "torch-export":
            return torch.export.load(str(path)).module().to(device)
        cls = _model_class(spec)
        if fmt == "safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device=device)
        else:  # a torch.save'd state dict: tensors only, never code
            state = torch.load(str(path), map_location=device, weights_only=True)
        model = cls(**spec.init)
        model.load_state_dict(state, strict=True)
        return model.to(device)
    except GateError:
        raise
    except ImportError as exc:
        raise GateError(
            f"a package this format needs is missing ({exc})", where=where, hint="pip install safetensors"
        ) from None
    except Exception as exc:  # torch raises many kinds for a truncated or mismatched file
        raise GateError(
            f"cannot be loaded as {fmt} ({type(exc).__name__}: {str(exc)[:300]})",
            where=where,
            hint="is the file complete, and does it match the model class and init?",
        ) from None


@dataclass
class TorchAdapter:
    module: Any
    torch: Any
    task: Task
    spec: ModelSpec
    device: str
    features: list[str] | None = None

    def predict(self, batch: pa.RecordBatch, columns: list[str]) -> np.ndarray:
        where = str(self.spec.path)
        cols = []
        for c in columns:
            arr = batch.column(c)
            if not (
                pa.types.is_floating(arr.type)
                or pa.types.is_integer(arr.type)
                or pa.types.is_boolean(arr.type)
            ):
                raise GateError(
                    f"feature '{c}' holds {arr.type}; a PyTorch model takes numbers",
                    where=where,
                    hint="encode it as numbers, or list only numeric columns under features:",
                )
            x = arr.to_numpy(zero_copy_only=False).astype(np.float32)
            if np.isnan(x).any():
                raise GateError(
                    f"feature '{c}' has empty or NaN values", where=where, hint="fill them before the gate"
                )
            cols.append(x)
        X = self.torch.from_numpy(np.column_stack(cols)).to(self.device)
        try:
            with self.torch.inference_mode():
                out = self.module(X)
        except Exception as exc:
            raise GateError(
                f"the model failed on a batch of {len(X)} rows with {X.shape[1]} features "
                f"({type(exc).__name__}: {str(exc)[:200]})",
                where=where,
                hint="check that features: lists the model's inputs, in order",
            ) from None
        y = out.detach().float().cpu().numpy()
        return self._shape(y, where)

    def _shape(self, y: np.ndarray, where: str) -> np.ndarray:
        k = {"binary": 1, "multiclass": len(self.task.classes), "regression": 1}[self.task.kind]
        if y.ndim == 1:
            y = y[:, None]
        if self.task.kind == "binary" and y.shape[1] == 2:
            y = self._probs(y)[:, 1:]  # two outputs: the positive class is the second
        elif y.shape[1] != k:
            raise GateError(
                f"the model returns {y.shape[1]} outputs per row; a {self.task.kind} task with this policy needs {k}",
                where=where,
                hint="the output width must match the classes (binary: 1 or 2)",
            )
        if self.task.kind == "regression":
            return y[:, 0].astype(np.float64)
        return self._probs(y).astype(np.float64)

    def _probs(self, y: np.ndarray) -> np.ndarray:
        mode = self.spec.output
        looks_like_probs = bool(
            ((y >= 0) & (y <= 1)).all() and (y.shape[1] == 1 or np.allclose(y.sum(1), 1, atol=1e-3))
        )
        if mode == "probabilities" or mode == "auto" and looks_like_probs:
            return y
        if y.shape[1] == 1:
            return 1 / (1 + np.exp(-y))
        e = np.exp(y - y.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def load_torch(spec: ModelSpec, path: Path, fmt: str, task: Task) -> TorchAdapter:
    torch = _torch(str(spec.path))
    device = spec.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise GateError(
            "device: cuda was asked for, but no CUDA device is visible",
            where=str(spec.path),
            hint="use device: cpu, or run on a GPU runner",
        )
    module = _load_module(spec, path, fmt, torch, device)
    if fmt != "torch-export":  # an exported program is already in inference form (and refuses eval())
        module.eval()
    return TorchAdapter(module, torch, task, spec, device)
