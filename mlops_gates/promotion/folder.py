"""The Git-friendly registry: a folder of write-once, content-addressed versions and one pointer file per
environment. Layout: models/NAME/versions/HEX/{files/,model.sig,model.decision.sig,version.json} and
models/NAME/environments/ENV.json; the ledger (audit log, lock) sits at the top. Encrypted at rest (an
encryption.json at the top says so; crypt.py says how), a version also holds key.json, its wrapped data key, and
is read through a private, decrypted copy: every reader sees plain files, checked against version.json."""

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

MARKER = "encryption.json"  # at the top: every version is sealed
KEY_FILE = "key.json"  # in a sealed version: its data key, wrapped by the registry key


class FolderStore:
    def __init__(self, root: Path, encrypt: bool = False):
        self.root = root
        self.location = str(root)
        self.encrypt = encrypt or (root / MARKER).is_file()
        self._key: Any = None
        self._plain: Path | None = None  # decrypted copies, private to this process

    def key(self) -> Any:
        from mlops_gates.promotion.crypt import registry_key

        if self._key is None:
            self._key = registry_key()
        return self._key

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
                copy = self._sealer(model, digest, tmp) if self.encrypt else shutil.copy2
                for rel in names:
                    (tmp / "files" / rel).parent.mkdir(parents=True, exist_ok=True)
                    copy(files / rel, tmp / "files" / rel)
                for src, name in ((signature, SIGNATURE), (decision, DECISION)):
                    if src is not None:
                        copy(src, tmp / name)
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
        meta = self._meta(vdir)
        if (vdir / KEY_FILE).exists():
            return checked(meta, digest, self._opened(vdir, model, digest), str(vdir), str(vdir / "files"))
        if self.encrypt:
            raise Tampered(
                "stored unencrypted in a registry encrypted at rest",
                where=str(vdir),
                hint="seal it: mlops-gates registry rotate-key (it seals what is plain)",
            )
        return checked(meta, digest, vdir, str(vdir), str(vdir / "files"))

    def _sealer(self, model: str, digest: str, vdir: Path) -> Any:
        """A copy function that seals each file under a new data key, whose wrapping goes into key.json."""
        from mlops_gates.promotion import crypt

        dek = crypt.new_data_key()
        write_atomic(vdir / KEY_FILE, json.dumps(self._wrapped(dek, model, digest), indent=2) + "\n")
        if not (self.root / MARKER).is_file():
            write_atomic(self.root / MARKER, json.dumps({"cipher": crypt.CIPHER}) + "\n")
        base = vdir

        def copy(src: Path, dst: Path) -> None:
            crypt.seal(src, dst, dek, crypt.context(model, digest, dst.relative_to(base).as_posix()))

        return copy

    def _wrapped(self, dek: bytes, model: str, digest: str) -> dict[str, Any]:
        from mlops_gates.promotion import crypt

        return {"cipher": crypt.CIPHER, **self.key().wrap(dek, crypt.context(model, digest, KEY_FILE))}

    def _wrapped_key(self, vdir: Path) -> dict[str, Any]:
        try:
            wrapped = json.loads((vdir / KEY_FILE).read_bytes().decode("utf-8"))
            if not isinstance(wrapped, dict) or not isinstance(wrapped.get("key"), str):
                raise ValueError
        except (OSError, ValueError):
            raise Tampered("key.json is not what mlops-gates writes", where=str(vdir)) from None
        return wrapped

    def _held(self, vdir: Path) -> str | None:
        """The id of the registry key that wraps the version's data key; None for a plain version."""
        return str(self._wrapped_key(vdir)["key"]) if (vdir / KEY_FILE).exists() else None

    def data_key(self, vdir: Path, model: str, digest: str) -> bytes:
        """The version's data key, unwrapped by the registry key (a wrong key is a configuration error)."""
        from mlops_gates.promotion import crypt

        wrapped = self._wrapped_key(vdir)
        held = wrapped["key"]
        if held != self.key().id:
            raise GateError(
                f"the version's data key is wrapped by the registry key {held}, not by {self.key().id}",
                where=str(vdir),
                hint=f"set {crypt.KEY_ENV} to the registry's current key",
            )
        return bytes(self.key().unwrap(wrapped, crypt.context(model, digest, KEY_FILE)))

    def _opened(self, vdir: Path, model: str, digest: str) -> Path:
        """A decrypted copy of the version (files/, signatures) in a private folder, once per process."""
        import atexit
        import tempfile as tf

        from mlops_gates.promotion import crypt

        if self._plain is None:
            self._plain = Path(tf.mkdtemp(prefix="mlops-gates-plain-"))  # mode 0700
            atexit.register(shutil.rmtree, self._plain, True)
        out = self._plain / model / digest.split(":")[1]
        if out.is_dir():
            return out
        dek = self.data_key(vdir, model, digest)
        work = Path(tf.mkdtemp(prefix=".opening-", dir=self._plain))
        sealed = [p for p in (vdir / "files").rglob("*") if p.is_file()]
        sealed += [vdir / n for n in (SIGNATURE, DECISION) if (vdir / n).is_file()]
        for src in sealed:
            rel = src.relative_to(vdir)
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            crypt.unseal(src, work / rel, dek, crypt.context(model, digest, rel.as_posix()))
        (work / "files").mkdir(exist_ok=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        os.rename(work, out)
        return out

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

    def rotate(self, new_key: Any) -> tuple[int, int]:
        """Every version under `new_key`: sealed ones rewrapped (their files untouched), plain ones sealed (a
        sealed copy beside it, then swapped in). The caller holds the ledger's lock. Returns (rewrapped, sealed)."""
        from mlops_gates.promotion import crypt

        rewrapped = sealed = 0
        for model in sorted(self.models(set())):
            for digest in self.versions(model):
                vdir = self._dir(model, digest)
                if self._held(vdir) == new_key.id:  # done by a rotation that stopped halfway: resumable
                    continue
                if (vdir / KEY_FILE).exists():
                    dek = self.data_key(vdir, model, digest)
                    wrapped = {
                        "cipher": crypt.CIPHER,
                        **new_key.wrap(dek, crypt.context(model, digest, KEY_FILE)),
                    }
                    write_atomic(vdir / KEY_FILE, json.dumps(wrapped, indent=2) + "\n")
                    rewrapped += 1
                    continue
                checked(self._meta(vdir), digest, vdir, str(vdir), "")  # sealed only as it was registered
                tmp = Path(tempfile.mkdtemp(prefix=".sealing-", dir=vdir.parent))
                old, self._key = self._key, new_key
                try:
                    copy = self._sealer(model, digest, tmp)
                    for src in [p for p in vdir.rglob("*") if p.is_file()]:
                        rel = src.relative_to(vdir)
                        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                        (shutil.copy2 if rel.as_posix() == "version.json" else copy)(src, tmp / rel)
                    gone = vdir.with_name(f".sealed-{vdir.name}")
                    os.rename(vdir, gone)
                    os.rename(tmp, vdir)
                    shutil.rmtree(gone)
                finally:
                    self._key = old
                    shutil.rmtree(tmp, ignore_errors=True)
                sealed += 1
        self._key, self.encrypt = new_key, True
        return rewrapped, sealed
