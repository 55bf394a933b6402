"""Pin a model by digest: copy it once into a private folder while hashing what was copied, and check the
copy again right before loading, so the bytes judged are the bytes hashed and no step re-reads a mutable path."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlops_gates.digest import copy_hashing, hash_tree, root_digest
from mlops_gates.errors import GateError


@dataclass(frozen=True)
class Pinned:
    source: Path
    path: Path  # the private copy (a file, or a folder holding the files)
    digest: str  # sha256 of a file; for a folder, sha256 over sorted "name NUL digest LF" lines
    files: dict[str, str]  # relative name -> sha256 digest

    def record(self) -> dict[str, object]:
        out: dict[str, object] = {"path": str(self.source), "digest": self.digest}
        if self.source.is_dir():
            out["files"] = self.files
        return out

    def verify(self) -> None:
        """Re-hash the private copy; a file changed since pinning is an error, never loaded."""
        now = hash_tree(self.path)
        if now != self.files:
            changed = sorted(set(now.items()) ^ set(self.files.items()))
            raise GateError(
                f"model file changed after it was pinned: {changed[0][0]}",
                where=str(self.source),
                hint="something wrote into the pinned copy; run again and keep the runner's temp folder private",
            )


def pin(source: Path, workdir: Path | None = None) -> Pinned:
    """Copy `source` (a file or folder) into a private folder, hashing each byte as it is copied."""
    if not source.exists():
        raise GateError(
            "model not found",
            where=str(source),
            hint="check the model path in the policy or on the command line",
        )
    base = Path(tempfile.mkdtemp(prefix="mlops-gates-model-", dir=workdir))
    os.chmod(base, 0o700)
    if source.is_file():
        dst = base / source.name
        files = {source.name: copy_hashing(source, dst)}
        return Pinned(source, dst, files[source.name], files)
    files = {}
    for p in sorted(source.rglob("*")):
        if p.is_symlink():
            raise GateError(
                f"model folder holds a symbolic link: {p.relative_to(source)}",
                where=str(source),
                hint="replace links with the files they point to",
            )
        rel = p.relative_to(source).as_posix()
        if p.is_dir():
            (base / rel).mkdir(parents=True, exist_ok=True)
        elif p.is_file():
            (base / rel).parent.mkdir(parents=True, exist_ok=True)
            files[rel] = copy_hashing(p, base / rel)
    if not files:
        raise GateError(
            "model folder is empty", where=str(source), hint="point at the folder holding the model's files"
        )
    return Pinned(source, base, root_digest(files), files)


def unpin(p: Pinned) -> None:
    shutil.rmtree(p.path if p.path.is_dir() else p.path.parent, ignore_errors=True)
