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

from mlops_gates.digest import sha256_file
from mlops_gates.errors import GateError
from mlops_gates.promotion.audit import Pointer
from mlops_gates.promotion.ledger import write_atomic
from mlops_gates.promotion.registry import Tampered, Version, check_digest, check_name

SIGNATURE, DECISION = "model.sig", "model.decision.sig"


class FolderStore:
    def __init__(self, root: Path):
        self.root = root
        self.shared = False  # a folder holds only its ledger's models
        self.location = str(root)

    def _dir(self, model: str, digest: str) -> Path:
        return self.root / "models" / check_name(model) / "versions" / check_digest(digest).split(":")[1]

    def add(
        self, model: str, files: Path, signature: Path | None, decision: Path | None
    ) -> tuple[Version, bool]:
        from mlops_gates.signing.statements import manifest

        m = manifest(files, [str(p) for p in (signature, decision) if p is not None])
        digest = "sha256:" + m.root_digest
        meta = {
            "model": model,
            "digest": digest,
            "files": {n: f"sha256:{d}" for n, d in sorted(m.files.items())},
            "signature": sha256_file(signature) if signature else None,
            "decision": sha256_file(decision) if decision else None,
        }
        final = self._dir(model, digest)
        if not final.exists():
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=final.parent))
            try:
                for rel in m.files:
                    (tmp / "files" / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(files / rel, tmp / "files" / rel)
                (tmp / "files").mkdir(exist_ok=True)
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
        stored = self._meta(final)
        if stored != meta:
            changed = [k for k in ("files", "signature", "decision") if stored.get(k) != meta[k]]
            raise GateError(
                f"{model} {digest} is already registered with other {' and '.join(changed)}",
                where=str(final),
                hint="versions are write-once: register the new content (it has its own digest), "
                "or re-sign nothing after registering",
            )
        return self.version(model, digest), False

    def _meta(self, vdir: Path) -> dict[str, Any]:
        try:
            meta: dict[str, Any] = json.loads((vdir / "version.json").read_text())
            return meta
        except (OSError, ValueError) as exc:
            raise Tampered(f"version.json is unreadable ({exc})", where=str(vdir)) from None

    def version(self, model: str, digest: str) -> Version:
        from mlops_gates.models.pin import root_digest

        vdir = self._dir(model, digest)
        if not vdir.is_dir():
            raise GateError(
                f"{model} has no version {digest}",
                where=self.location,
                hint="register it first: mlops-gates register --registry REG --model NAME MODEL_DIR",
            )
        meta = self._meta(vdir)
        on_disk = {
            p.relative_to(vdir / "files").as_posix(): sha256_file(p)
            for p in sorted((vdir / "files").rglob("*"))
            if p.is_file()
        }
        if meta.get("digest") != digest or root_digest(meta.get("files", {})) != digest:
            raise Tampered(f"version.json does not describe {digest}", where=str(vdir))
        if on_disk != meta["files"]:
            diff = sorted(set(on_disk.items()) ^ set(meta["files"].items()))
            raise Tampered(
                f"the version's files changed after it was registered: {', '.join(sorted({n for n, _ in diff}))}",
                where=str(vdir),
                hint="restore the files from version control; never edit a registered version",
            )
        paths: dict[str, Path | None] = {}
        for key, name in (("signature", SIGNATURE), ("decision", DECISION)):
            p = vdir / name
            got = sha256_file(p) if p.is_file() else None
            if got != meta.get(key):
                raise Tampered(f"{name} changed after the version was registered", where=str(vdir))
            paths[key] = p if got else None
        return Version(
            model, digest, vdir / "files", paths["signature"], paths["decision"], str(vdir / "files")
        )

    def versions(self, model: str) -> list[str]:
        base = self.root / "models" / check_name(model) / "versions"
        return (
            sorted(f"sha256:{p.name}" for p in base.iterdir() if not p.name.startswith("."))
            if base.is_dir()
            else []
        )

    def models(self) -> list[str]:
        base = self.root / "models"
        return sorted(p.name for p in base.iterdir()) if base.is_dir() else []

    def pointers(self, models: set[str]) -> dict[tuple[str, str], dict[str, Any]]:
        out = {}
        for model in self.models():
            for p in sorted((self.root / "models" / model / "environments").glob("*.json")):
                try:
                    out[(model, p.stem)] = json.loads(p.read_text())
                except ValueError:
                    raise Tampered("the pointer is not JSON", where=str(p)) from None
        return out

    def set_pointer(self, model: str, env: str, pointer: Pointer) -> None:
        path = self.root / "models" / check_name(model) / "environments" / f"{env}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(pointer.as_json(model, env), indent=2) + "\n")
