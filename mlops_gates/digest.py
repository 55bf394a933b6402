"""The one way to hash: a file's sha256, a folder's files, and a folder's root digest over their names and digests.

Every digest here is written `sha256:HEX`; `hex_of` strips the prefix where a format wants the bare hex
(model-signing's statement, in-toto subjects)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from mlops_gates.errors import GateError

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def copy_hashing(src: Path, dst: Path) -> str:
    """Copy a file and return the digest of the bytes written, read once (the copy is what gets judged)."""
    h = hashlib.sha256()
    with src.open("rb") as fi, dst.open("wb") as fo:
        for chunk in iter(lambda: fi.read(CHUNK), b""):
            h.update(chunk)
            fo.write(chunk)
    return "sha256:" + h.hexdigest()


def hex_of(digest: str) -> str:
    return digest.removeprefix("sha256:")


def root_digest(files: dict[str, str]) -> str:
    """A folder's digest, which covers names too: sha256 over sorted 'name NUL sha256:HEX LF' lines."""
    lines = "".join(f"{n}\0{d}\n" for n, d in sorted(files.items()))
    return sha256_bytes(lines.encode())


def folder_files(folder: Path, skip: Callable[[str], bool] = lambda rel: False) -> dict[str, str]:
    """Each file's digest by its POSIX name relative to `folder`, in name order; a symbolic link is refused
    (what it points to can change after hashing)."""
    files: dict[str, str] = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if skip(rel):
            continue
        if p.is_symlink():
            raise GateError(
                f"symbolic link in the model folder: {rel}",
                where=str(folder),
                hint="replace it with the file it points to",
            )
        if p.is_file():
            files[rel] = sha256_file(p)
    return files


def hash_tree(path: Path) -> dict[str, str]:
    """A file as {name: digest}, or every file of a folder."""
    return {path.name: sha256_file(path)} if path.is_file() else folder_files(path)


def digest_path(path: Path) -> dict[str, object]:
    """A file's digest, or for a folder each file's digest and a root digest that also covers the names."""
    if path.is_file():
        return {"path": str(path), "digest": sha256_file(path)}
    if not path.is_dir():
        raise GateError(
            "not found", where=str(path), hint="pass --model ROLE=PATH to an existing model file or folder"
        )
    files = folder_files(path)
    return {"path": str(path), "digest": root_digest(files), "files": files}
