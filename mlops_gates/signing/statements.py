"""The two in-toto statements: the model's (OpenSSF model-signing v1.0) and the decision's (ours)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_gates.digest import folder_files, hex_of, root_digest, sha256_bytes
from mlops_gates.errors import GateError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
MODEL_PREDICATE = "https://model_signing/signature/v1.0"
DECISION_PREDICATE = "https://mlops-gates.dev/attestation/decision/v1"
GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")  # what model-signing ignores by default
DECISION_FILE = "model.decision.sig"


def canonical(obj: Any) -> bytes:
    """RFC 8785 canonical JSON: the same statement always signs the same bytes, numbers round-trip exactly."""
    from mlops_gates.signing import need

    dumped: bytes = need("rfc8785").dumps(obj)
    return dumped


@dataclass(frozen=True)
class Manifest:
    """A model folder's files and their sha256 digests, as model-signing hashes them (one digest per file)."""

    name: str
    files: dict[str, str]  # relative POSIX name -> hex sha256
    ignored: tuple[str, ...]

    @property
    def subject_digest(self) -> str:
        """model-signing's subject: sha256 over the per-file digests in name order. It does not cover names."""
        h = hashlib.sha256()
        for name in sorted(self.files):
            h.update(bytes.fromhex(self.files[name]))
        return h.hexdigest()

    @property
    def root_digest(self) -> str:
        """Our root digest, which covers names too: sha256 over sorted 'name NUL sha256:digest LF' lines."""
        return hex_of(root_digest({n: f"sha256:{d}" for n, d in self.files.items()}))

    def statement(self) -> dict[str, Any]:
        return {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": self.name, "digest": {"sha256": self.subject_digest}}],
            "predicateType": MODEL_PREDICATE,
            "predicate": {
                "serialization": {
                    "method": "files",
                    "hash_type": "sha256",
                    "allow_symlinks": False,
                    "ignore_paths": list(self.ignored),
                },
                "resources": [
                    {"name": n, "algorithm": "sha256", "digest": self.files[n]} for n in sorted(self.files)
                ],
            },
        }


def _under(rel: str, ignored: set[str]) -> bool:
    parts = rel.split("/")
    return any("/".join(parts[: i + 1]) in ignored for i in range(len(parts)))


def manifest(model_dir: Path, ignore: list[str] | tuple[str, ...] = ()) -> Manifest:
    """Hash every file of the folder except the ignored ones (paths relative to the folder, or inside it)."""
    if not model_dir.is_dir():
        raise GateError(
            "not a folder",
            where=str(model_dir),
            hint="sign or verify the folder that holds the model's files",
        )
    ignored: set[str] = set(GIT_PATHS)
    for p in ignore:
        path = Path(p)
        if path.is_absolute() or path.exists():
            try:
                ignored.add(path.resolve().relative_to(model_dir.resolve()).as_posix())
                continue
            except ValueError:
                pass
        ignored.add(Path(p).as_posix())
    found = folder_files(model_dir, skip=lambda rel: _under(rel, ignored))
    files = {n: hex_of(d) for n, d in found.items()}
    if not files:
        raise GateError(
            "the model folder has no file to sign",
            where=str(model_dir),
            hint="point at the folder that holds the model",
        )
    return Manifest(model_dir.resolve().name, files, tuple(sorted(ignored)))


WAIVER_FIELDS = ("digest", "check", "reason", "approver", "role", "expires")


def decision_statement(rec: dict[str, Any], m: Manifest, model_statement: bytes) -> dict[str, Any]:
    """What the gate decided about exactly this model: subjects are the model's root digest and the digest of
    the model-signing statement (which names the files); the predicate carries the verdict and the evidence."""
    gates = [
        {
            "name": g["name"],
            "type": g["type"],
            "status": g["status"],
            "reason": g["reason"],
            "metrics": [
                {
                    k: m_[k]
                    for k in ("metric", "scope", "status", "value", "ci", "n", "comparator", "threshold")
                }
                for m_ in g["metrics"]
            ],
        }
        for g in rec["gates"]
    ]
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": m.name, "digest": {"sha256": m.root_digest}},
            {
                "name": "model-signing-statement",
                "digest": {"sha256": hex_of(sha256_bytes(model_statement))},
            },
        ],
        "predicateType": DECISION_PREDICATE,
        "predicate": {
            "decision": rec["decision"],
            "reasons": rec["reasons"],
            "gates": gates,
            "policy": rec["inputs"]["policy"],
            "models": {
                role: {k: v for k, v in model.items() if k in ("digest", "files", "provenance")}
                for role, model in rec["inputs"]["models"].items()
            },
            "data": rec["inputs"]["data"],
            "evaluation": {
                k: rec["evaluation"][k] for k in ("task", "rows", "confidence", "decision_mode", "correction")
            },
            "tool": rec["tool"],
            "decided_at": rec["created_at"],
            "ci": rec["ci"],
            **(
                {"waivers": [{k: w[k] for k in WAIVER_FIELDS} for w in rec["waivers"]["applied"]]}
                if rec.get("waivers", {}).get("applied")
                else {}
            ),
        },
    }


def candidate_problem(models: Any, m: Manifest) -> str | None:
    """Why a decision's candidate is not the folder `m`, or None when it is: the same files with the same
    digests (a one-file candidate: the folder holds exactly that file)."""
    cand = models.get("candidate") if isinstance(models, dict) else None
    if not isinstance(cand, dict) or not isinstance(cand.get("digest"), str):
        return "the decision names no candidate model"
    have = {n: f"sha256:{d}" for n, d in m.files.items()}
    files = cand.get("files")
    if isinstance(files, dict):
        want = {n: d for n, d in files.items() if not _under(n, set(m.ignored))}
        if want == have:
            return None
    elif len(have) == 1 and next(iter(have.values())) == cand["digest"]:
        return None
    return f"the decision is about the candidate {cand['digest']}, not this folder (sha256:{m.root_digest})"
