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

MAX_DEVICE_ROWS = 1 << 20  # more rows per batch no longer speed a GPU up; the cap bounds host memory
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

    rows: int = 0  # CUDA: rows per device batch, chosen from free device memory at the first call

    @property
    def own_batches(self) -> bool:
        """On a GPU the adapter sizes its own batches (from free memory), so callers pass whole record batches."""
        return self.device.startswith("cuda")

    def predict(self, batch: pa.RecordBatch, columns: list[str]) -> np.ndarray:
        where = str(self.spec.path)
        X = self._matrix(batch, columns, where)
        try:
            with self.torch.inference_mode():
                if self.own_batches:
                    y = self._cuda(X)
                else:
                    y = self.module(self.torch.from_numpy(X)).detach().float().numpy()
        except Exception as exc:
            raise GateError(
                f"the model failed on a batch of {len(X)} rows with {X.shape[1]} features "
                f"({type(exc).__name__}: {str(exc)[:200]})",
                where=where,
                hint="check that features: lists the model's inputs, in order",
            ) from None
        return self._shape(y, where)

    def _matrix(self, batch: pa.RecordBatch, columns: list[str], where: str) -> np.ndarray:
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
        return np.column_stack(cols)

    def _cuda(self, X: np.ndarray) -> np.ndarray:
        """Rows go from pinned host memory on a copy stream, so batch k+1 travels while batch k computes."""
        torch = self.torch
        host = torch.from_numpy(X).pin_memory()
        step = self.rows or self._fit(host)
        copy, compute = torch.cuda.Stream(self.device), torch.cuda.current_stream(self.device)

        def send(start: int) -> tuple[Any, Any]:
            with torch.cuda.stream(copy):
                x = host[start : start + step].to(self.device, non_blocking=True)
                done = torch.cuda.Event()
                done.record(copy)
            return x, done

        outs, nxt = [], send(0)
        for start in range(0, len(X), step):
            x, done = nxt
            compute.wait_event(done)
            x.record_stream(compute)  # the copy stream's memory is in use on this one until the batch is done
            if start + step < len(X):
                nxt = send(start + step)
            outs.append(self.module(x).float())
        return torch.cat(outs).cpu().numpy()

    def _fit(self, host: Any) -> int:
        """Rows per device batch: half the free device memory (the other half holds the batch in flight),
        divided by what one row of a probe batch took at its peak."""
        torch, dev = self.torch, self.device
        probe = host[: min(len(host), 1024)].to(dev)
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev)
        self.module(probe)
        torch.cuda.synchronize(dev)
        per_row = max((torch.cuda.max_memory_allocated(dev) - before) / len(probe), 4.0 * host.shape[1])
        free, _ = torch.cuda.mem_get_info(dev)
        self.rows = int(max(1024, min(MAX_DEVICE_ROWS, free // 2 // per_row)))
        return self.rows

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
