"""Content digests: a file's sha256, and a folder's root digest over its sorted file names and digests."""

from __future__ import annotations

import hashlib
from pathlib import Path

from mlops_gates.errors import GateError


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def digest_path(path: Path) -> dict[str, object]:
    """A file's digest, or for a folder each file's digest and a root digest that also covers the names."""
    if path.is_file():
        return {"path": str(path), "digest": sha256_file(path)}
    if not path.is_dir():
        raise GateError(
            "not found", where=str(path), hint="pass --model ROLE=PATH to an existing model file or folder"
        )
    from mlops_gates.models.pin import root_digest

    files = {p.relative_to(path).as_posix(): sha256_file(p) for p in sorted(path.rglob("*")) if p.is_file()}
    return {"path": str(path), "digest": root_digest(files), "files": files}
