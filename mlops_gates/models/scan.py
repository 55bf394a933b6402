"""Identify every file of a model by its content and walk its pickles without unpickling anything.

A file is safe only when the scanner could walk it to its end and everything it names is on the reviewed
allow-list (`allowlist.py`); anything it cannot walk, or cannot recognise, is not safe. Formats are told by
their bytes, never their names: a pickle named `.txt` is a pickle, a `.joblib` file compressed with zlib is
decompressed and walked, and a zip archive with two members of one name, an encrypted member or a compression
other than stored/deflate is refused (readers disagree on which member they would load).
"""

from __future__ import annotations

import bz2
import io
import json
import lzma
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_gates.models import pickle_walk
from mlops_gates.models.allowlist import allowed_dotted

MAX_ZIP_DEPTH = 3
MAX_INFLATED = 8 << 30  # a compressed model that inflates beyond this is refused, not held in memory
ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
# joblib's compressors, told by their first bytes as joblib.load tells them
_COMPRESSED = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"]\x00\x00", "lzma"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"\x78", "zlib"),
)


@dataclass
class FileReport:
    path: str
    kind: str  # pickle, joblib, torch-zip, torchscript, torch-export, skops, safetensors, text, zip, unknown
    safe: bool | None  # None: not recognised (nothing loads it)
    globals: list[str] = field(default_factory=list)  # every global a pickle names
    unsafe: list[str] = field(default_factory=list)  # the ones outside the allow-list
    note: str | None = None


def pickle_report(path: str, data: bytes, kind: str = "pickle", *, torchscript: bool = False) -> FileReport:
    """Walk a pickle (or joblib) stream; safe only if it was walked to the end and every name is allowed."""
    note = None
    try:
        w = pickle_walk.walk(data, joblib=kind == "joblib")
    except pickle_walk.Unsafe as exc:
        w, note = exc.walk or pickle_walk.Walk(), str(exc)
    refused = sorted({g for g in w.refused if not (torchscript and _torchscript_type(g))})
    return FileReport(path, kind, not refused and note is None, sorted(set(w.globals)), refused, note)


def _torchscript_type(dotted: str) -> bool:
    """Inside a TorchScript archive, `__torch__.*` names are TorchScript's own compiled types, resolved by
    torch.jit.load against the archive's code, never imported from Python."""
    return dotted.startswith("__torch__.") or dotted.startswith("torch.jit._pickle.")


def _safetensors_report(path: str, data: bytes) -> FileReport | None:
    """A safetensors file (8-byte header length, a JSON header, then exactly the tensors), or None."""
    if len(data) < 10 or data[8:9] != b"{":
        return None
    try:
        (n,) = struct.unpack("<Q", data[:8])
        if n > len(data) - 8 or n > 100 << 20:
            raise ValueError("header length beyond the file")
        header = json.loads(data[8 : 8 + n])
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        if 8 + n + end != len(data):
            raise ValueError(f"tensors end at byte {8 + n + end}, the file has {len(data)}")
    except (ValueError, KeyError, TypeError, AttributeError, struct.error) as exc:
        return FileReport(path, "safetensors", False, note=f"malformed safetensors ({exc})")
    tensors = len(header) - ("__metadata__" in header)
    return FileReport(path, "safetensors", True, note=f"{tensors} tensors, no code")


def _zip_problem(z: zipfile.ZipFile) -> str | None:
    names = [i.filename for i in z.infolist()]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        return f"two members named {dupes[0]} (readers disagree on which one loads)"
    for i in z.infolist():
        if i.flag_bits & 0x1:
            return f"member {i.filename} is encrypted"
        if i.compress_type not in ZIP_METHODS:
            return f"member {i.filename} uses compression method {i.compress_type} (only stored or deflate)"
    return None


def _zip_reports(path: str, data: bytes, depth: int) -> list[FileReport]:
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        names = z.namelist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        return [FileReport(path, "zip", False, note=f"corrupt archive ({exc})")]
    problem = _zip_problem(z)
    if problem:
        return [FileReport(path, "zip", False, note=f"refused archive: {problem}")]
    if "schema.json" in names:
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
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as exc:
            reports.append(FileReport(inner, "zip-member", False, note=f"cannot be read ({exc})"))
            continue
        if n.endswith(".pkl"):
            reports.append(pickle_report(inner, member, torchscript=kind == "torchscript"))
        elif member[:4] == b"PK\x03\x04":
            if depth >= MAX_ZIP_DEPTH:
                reports.append(FileReport(inner, "zip", False, note="archives nested too deep"))
            else:
                reports += _zip_reports(inner, member, depth + 1)
        elif _is_storage(kind, n):
            continue  # raw tensor bytes, read by torch as numbers, never as a pickle
        elif _looks_like_pickle(member):
            reports.append(pickle_report(inner, member, torchscript=kind == "torchscript"))
    reports[0].safe = all(r.safe for r in reports[1:])
    if not reports[0].safe:
        reports[0].note = "a member is not safe"
    return reports


def _is_storage(kind: str, name: str) -> bool:
    parts = name.split("/")
    return (
        kind in ("torch-zip", "torchscript")
        and len(parts) >= 2
        and parts[-2] == "data"
        and parts[-1].isdigit()
    )


def _looks_like_pickle(data: bytes) -> bool:
    """A protocol 2+ header, or bytes pickle.load would act on: walkable to STOP, or reaching an import
    of a real module name before they break (pickle.load would have run it by then)."""
    if data[:1] == b"\x80":
        return True
    try:
        pickle_walk.walk(data)
    except pickle_walk.Unsafe as exc:
        return exc.imports
    return True


def _skops_report(path: str, data: bytes) -> FileReport:
    try:
        from skops.io import get_untrusted_types
    except ImportError:
        return FileReport(path, "skops", None, note="skops is not installed: pip install skops")
    try:
        untrusted = get_untrusted_types(data=data)
    except Exception as exc:
        return FileReport(path, "skops", False, note=f"corrupt skops file ({type(exc).__name__}: {exc})")
    bad = sorted(t for t in untrusted if not allowed_dotted(t))
    note = (
        "skops' own defaults plus exact reviewed types" if not bad else "names types outside the allow-list"
    )
    return FileReport(path, "skops", not bad, sorted(untrusted), bad, note=note)


def _inflate(data: bytes, method: str) -> bytes:
    if method == "lz4":
        raise ValueError("lz4-compressed joblib files are not scanned: save the model with skops")
    d: Any
    if method == "zlib":
        d = zlib.decompressobj()
    elif method == "gzip":
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    else:
        d = bz2.BZ2Decompressor() if method == "bz2" else lzma.LZMADecompressor()
    out = d.decompress(data, MAX_INFLATED + 1)
    if len(out) > MAX_INFLATED:
        raise ValueError(f"inflates beyond {MAX_INFLATED >> 30} GiB")
    if not getattr(d, "eof", True):
        raise ValueError("the compressed stream is cut off")
    if getattr(d, "unused_data", b""):
        raise ValueError("data after the compressed stream")
    return out


def scan_bytes(shown: str, data: bytes, *, joblib: bool = False) -> list[FileReport]:
    """Tell the format from the bytes and report on it (`joblib`: the file will be read by joblib.load)."""
    if data[:4] == b"PK\x03\x04":
        return _zip_reports(shown, data, 1)
    st = _safetensors_report(shown, data)
    if st is not None:
        return [st]
    for magic, method in _COMPRESSED:
        if data.startswith(magic):
            try:
                inner = _inflate(data, method)
            except (ValueError, OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
                if not joblib:
                    break  # not what joblib would read here: tell the format by the rest
                return [FileReport(shown, "joblib", False, note=f"{method}-compressed, not readable ({exc})")]
            report = pickle_report(shown, inner, "joblib")
            report.note = f"{method}-compressed; " + (report.note or "walked after decompressing")
            return [report]
    if data[:1] == b"\x80" or joblib:
        return [pickle_report(shown, data, "joblib" if joblib else "pickle")]
    if _looks_like_pickle(data):  # protocols 0 and 1 have no header
        return [pickle_report(shown, data)]
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return [FileReport(shown, "unknown", None, note="format not recognised; no adapter loads it")]
    return [FileReport(shown, "text", True)]


def scan_file(path: Path, shown: str | None = None, *, joblib: bool | None = None) -> list[FileReport]:
    """Scan one file; `joblib` None means: as joblib when joblib would read it (a .joblib name)."""
    as_joblib = path.suffix.lower() == ".joblib" if joblib is None else joblib
    return scan_bytes(shown or str(path), path.read_bytes(), joblib=as_joblib)


def scan(path: Path) -> list[FileReport]:
    """Every file of a model (a file or a folder), with what it is and whether it is safe to load."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() or p.is_symlink())
    out: list[FileReport] = []
    for f in files:
        shown = f.name if path.is_file() else f.relative_to(path).as_posix()
        if f.is_symlink():
            out.append(FileReport(shown, "link", False, note="a symbolic link: replace it with the file"))
            continue
        out += scan_file(f, shown)
    return out
