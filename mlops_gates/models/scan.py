"""Identify every file of a model and walk pickles opcode by opcode, without unpickling anything.

A pickle can call any importable function while it loads; what it may call is exactly the set of globals it
names. So a pickle is safe to load only if every global it names is on a small allow-list of data types
(numpy arrays, scikit-learn estimators, torch tensors). Anything else fails, named.
"""

from __future__ import annotations

import io
import json
import pickletools
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

# Exact globals, and module prefixes whose every name is allowed.
SAFE_GLOBALS = {
    ("builtins", n)
    for n in (
        "set",
        "frozenset",
        "dict",
        "list",
        "tuple",
        "slice",
        "range",
        "complex",
        "bytearray",
        "bytes",
        "object",
        "float",
        "int",
        "bool",
        "str",
    )
} | {
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    ("copyreg", "_reconstructor"),
    ("_codecs", "encode"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy", "float64"),
    ("numpy", "float32"),
    ("numpy", "int64"),
    ("numpy", "int32"),
    ("numpy", "bool_"),
    ("numpy", "uint8"),
    ("numpy", "object_"),
    ("numpy", "str_"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch", "Size"),
    ("torch", "device"),
    ("torch.serialization", "_get_layout"),
}
SAFE_MODULES = (
    "numpy.core.multiarray",
    "numpy._core.multiarray",
    "numpy.core.numeric",
    "numpy._core.numeric",
    "numpy.random._pickle",
    "numpy.random._mt19937",
    "numpy.random._pcg64",
    "numpy.random.bit_generator",
    "sklearn.",
)
TORCH_STORAGES = {
    f"{t}Storage"
    for t in (
        "Float",
        "Double",
        "Half",
        "BFloat16",
        "Long",
        "Int",
        "Short",
        "Char",
        "Byte",
        "Bool",
        "ComplexFloat",
        "ComplexDouble",
        "Untyped",
    )
}
TEXT = {".json", ".yaml", ".yml", ".txt", ".md", ".cfg", ".toml", ".csv"}
MAX_ZIP_DEPTH = 3


def is_safe_global(module: str, name: str) -> bool:
    if (module, name) in SAFE_GLOBALS:
        return True
    if (
        module == "torch"
        and name in TORCH_STORAGES
        or module == "torch"
        and name in ("float32", "float64", "float16", "bfloat16", "int64", "int32", "bool", "uint8")
    ):
        return True
    return any(module == m or module.startswith(m if m.endswith(".") else m + ".") for m in SAFE_MODULES)


@dataclass
class FileReport:
    path: str
    kind: str  # pickle, torch-zip, torchscript, torch-export, skops, safetensors, text, zip, unknown
    safe: bool | None  # None: not verifiable
    globals: list[str] = field(default_factory=list)  # every global a pickle names
    unsafe: list[str] = field(default_factory=list)  # the ones outside the allow-list
    note: str | None = None


def pickle_globals(data: bytes) -> list[tuple[str, str]]:
    """Every (module, name) a pickle stream imports, read from its opcodes (GLOBAL and STACK_GLOBAL)."""
    found: list[tuple[str, str]] = []
    strings: list[str] = []  # recent string pushes, for STACK_GLOBAL
    memo: dict[int, object] = {}
    last: object = None
    for op, arg, _pos in pickletools.genops(io.BytesIO(data)):
        name = op.name
        if name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            found.append((module, attr))
        elif name == "STACK_GLOBAL":
            if len(strings) < 2:
                found.append(("?", "?"))  # a global whose name was computed: refuse
            else:
                found.append((strings[-2], strings[-1]))
        elif name in (
            "SHORT_BINUNICODE",
            "BINUNICODE",
            "BINUNICODE8",
            "UNICODE",
            "SHORT_BINSTRING",
            "BINSTRING",
            "STRING",
        ):
            strings.append(str(arg))
            last = str(arg)
            continue
        elif name in ("BINPUT", "LONG_BINPUT", "PUT") and isinstance(arg, int):
            memo[arg] = last
        elif name == "MEMOIZE":
            memo[len(memo)] = last
        elif name in ("BINGET", "LONG_BINGET", "GET") and isinstance(arg, int):
            value = memo.get(arg)
            if isinstance(value, str):
                strings.append(value)
                last = value
                continue
        last = None
    return found


def _torchscript_type(module: str) -> bool:
    """Inside a TorchScript archive, `__torch__.*` names are TorchScript's own compiled types, resolved by
    torch.jit.load against the archive's code, never imported from Python."""
    return module == "__torch__" or module.startswith("__torch__.") or module == "torch.jit._pickle"


def _pickle_report(path: str, data: bytes, kind: str = "pickle", torchscript: bool = False) -> FileReport:
    try:
        names = pickle_globals(data)
    except Exception as exc:  # truncated or corrupt: cannot be verified, so it is not safe
        note = f"not a complete pickle stream ({type(exc).__name__}: {exc})"
        return FileReport(path, kind, False, note=note)
    shown = sorted({f"{m}.{n}" for m, n in names})
    bad = sorted(
        {f"{m}.{n}" for m, n in names if not (is_safe_global(m, n) or torchscript and _torchscript_type(m))}
    )
    return FileReport(path, kind, not bad, shown, bad)


def _safetensors_report(path: str, data: bytes) -> FileReport:
    try:
        (n,) = struct.unpack("<Q", data[:8])
        if n > len(data) - 8 or n > 100 << 20:
            raise ValueError("header length beyond the file")
        header = json.loads(data[8 : 8 + n])
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        if 8 + n + end != len(data):
            raise ValueError(f"tensors end at byte {8 + n + end}, the file has {len(data)}")
    except (ValueError, KeyError, TypeError, struct.error) as exc:
        return FileReport(path, "safetensors", False, note=f"malformed safetensors ({exc})")
    return FileReport(
        path, "safetensors", True, note=f"{len(header) - ('__metadata__' in header)} tensors, no code"
    )


def _zip_reports(path: str, data: bytes, depth: int) -> list[FileReport]:
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        names = z.namelist()
    except (zipfile.BadZipFile, ValueError) as exc:
        return [FileReport(path, "zip", False, note=f"corrupt archive ({exc})")]
    if any(n.endswith("schema.json") for n in names) and path.endswith(".skops"):
        return [_skops_report(path, data)]
    kind = (
        "torchscript"
        if any("/code/" in n for n in names)
        else "torch-export"
        if any(n.endswith("models/model.json") for n in names)
        else "torch-zip"
        if any(n.endswith("data.pkl") for n in names)
        else "zip"
    )
    reports = [FileReport(path, kind, True)]
    for n in names:
        inner = f"{path}!{n}"
        try:
            member = z.read(n)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            reports.append(FileReport(inner, "zip-member", False, note=f"cannot be read ({exc})"))
            continue
        if n.endswith(".pkl"):
            reports.append(_pickle_report(inner, member, "pickle", torchscript=kind == "torchscript"))
        elif member[:4] == b"PK\x03\x04":
            if depth >= MAX_ZIP_DEPTH:
                reports.append(FileReport(inner, "zip", False, note="archives nested too deep"))
            else:
                reports += _zip_reports(inner, member, depth + 1)
        elif member[:2] == b"\x80" and n.rsplit("/", 1)[-1].startswith(("data", "constants")):
            reports.append(_pickle_report(inner, member))
    reports[0].safe = all(r.safe for r in reports[1:])
    return reports


def _skops_report(path: str, data: bytes) -> FileReport:
    try:
        from skops.io import get_untrusted_types
    except ImportError:
        return FileReport(path, "skops", None, note="skops is not installed: pip install skops")
    try:
        untrusted = get_untrusted_types(data=data)
    except Exception as exc:
        return FileReport(path, "skops", False, note=f"corrupt skops file ({type(exc).__name__}: {exc})")
    bad = sorted(t for t in untrusted if not is_safe_global(*t.rsplit(".", 1)))
    return FileReport(
        path,
        "skops",
        not bad,
        sorted(untrusted),
        bad,
        note="data-only format; types checked against the allow-list",
    )


def scan_file(path: Path, shown: str | None = None) -> list[FileReport]:
    shown = shown or str(path)
    data = path.read_bytes()
    if data[:4] == b"PK\x03\x04":
        return _zip_reports(shown, data, 1)
    if path.suffix == ".safetensors":
        return [_safetensors_report(shown, data)]
    if data[:1] == b"\x80" or path.suffix in (".pkl", ".pickle", ".joblib", ".pt", ".pth", ".bin"):
        report = _pickle_report(shown, data, "joblib" if path.suffix == ".joblib" else "pickle")
        if report.kind == "joblib" and report.note:
            report.note = "joblib stores arrays outside the pickle stream, so it cannot be walked fully: save the model with skops"
        return [report]
    if path.suffix.lower() in TEXT:
        try:
            data.decode("utf-8")
            return [FileReport(shown, "text", True)]
        except UnicodeDecodeError:
            pass
    return [FileReport(shown, "unknown", None, note="format not recognised; it is not loaded by any adapter")]


def scan(path: Path) -> list[FileReport]:
    """Every file of a model (a file or a folder), with what it is and whether it is safe to load."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    out: list[FileReport] = []
    for f in files:
        out += scan_file(f, f.name if path.is_file() else f.relative_to(path).as_posix())
    return out
