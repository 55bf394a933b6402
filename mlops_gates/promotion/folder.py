"""The Git-friendly registry: a folder of write-once, content-addressed versions and one pointer file per
environment. Layout: models/NAME/versions/HEX/{files/,model.sig,model.decision.sig,version.json} and
models/NAME/environments/ENV.json; the ledger (audit log, lock) sits at the top."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mlops_gates.errors import GateError, Tampered
from mlops_gates.promotion.audit import Pointer
from mlops_gates.promotion.ledger import write_atomic
from mlops_gates.promotion.registry import (
    DECISION,
    SIGNATURE,
    Version,
    already,
    check_digest,
    check_name,
    checked,
    describe,
)


class FolderStore:
    def __init__(self, root: Path):
        self.root = root
        self.location = str(root)

    def _dir(self, model: str, digest: str) -> Path:
        return self.root / "models" / check_name(model) / "versions" / check_digest(digest).split(":")[1]

    def add(
        self, model: str, files: Path, signature: Path | None, decision: Path | None
    ) -> tuple[Version, bool]:
        names, meta = describe(model, files, signature, decision)
        digest = meta["digest"]
        final = self._dir(model, digest)
        if not final.exists():
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=final.parent))
            try:
                (tmp / "files").mkdir()
                for rel in names:
                    (tmp / "files" / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(files / rel, tmp / "files" / rel)
                for src, name in ((signature, SIGNATURE), (decision, DECISION)):
                    if src is not None:
                        shutil.copy2(src, tmp / name)
                (tmp / "version.json").write_text(json.dumps(meta, indent=2) + "\n")
                os.rename(tmp, final)  # atomic; fails if a racing job registered it first
                return self.version(model, digest), True
            except OSError:
                if not final.exists():
                    raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        already(self._meta(final), meta, str(final))
        return self.version(model, digest), False

    def _meta(self, vdir: Path) -> dict[str, Any]:
        try:
            meta = json.loads((vdir / "version.json").read_bytes().decode("utf-8"))
        except (OSError, ValueError) as exc:
            raise Tampered(f"version.json is unreadable ({type(exc).__name__})", where=str(vdir)) from None
        if not isinstance(meta, dict):
            raise Tampered("version.json is not a JSON object", where=str(vdir))
        return meta

    def version(self, model: str, digest: str) -> Version:
        vdir = self._dir(model, digest)
        if not vdir.is_dir():
            raise GateError(
                f"{model} has no version {digest}",
                where=self.location,
                hint="register it first: mlops-gates register --registry REG --model NAME MODEL_DIR",
            )
        return checked(self._meta(vdir), digest, vdir, str(vdir), str(vdir / "files"))

    def versions(self, model: str) -> list[str]:
        base = self.root / "models" / check_name(model) / "versions"
        return (
            sorted(f"sha256:{p.name}" for p in base.iterdir() if not p.name.startswith("."))
            if base.is_dir()
            else []
        )

    def models(self, ours: set[str]) -> set[str]:
        base = self.root / "models"
        return {p.name for p in base.iterdir()} | ours if base.is_dir() else set(ours)

    def pointers(self, models: set[str]) -> dict[tuple[str, str], dict[str, Any]]:
        out = {}
        for model in sorted(models):
            for p in sorted((self.root / "models" / model / "environments").glob("*.json")):
                try:
                    pointer = json.loads(p.read_bytes().decode("utf-8"))
                except (OSError, ValueError) as exc:  # a folder, unreadable, not UTF-8, not JSON
                    raise Tampered(
                        f"the pointer is not a JSON file ({type(exc).__name__})", where=str(p)
                    ) from None
                if not isinstance(pointer, dict):
                    raise Tampered("the pointer is not a JSON object", where=str(p))
                out[(model, p.stem)] = pointer
        return out

    def set_pointer(self, model: str, env: str, pointer: Pointer) -> None:
        path = self.root / "models" / check_name(model) / "environments" / f"{env}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(pointer.as_json(model, env), indent=2) + "\n")
