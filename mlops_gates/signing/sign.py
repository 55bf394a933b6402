"""Sign a model folder (model-signing v1.0) and, with a decision record, what the gate decided about it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mlops_gates.errors import GateError
from mlops_gates.signing.statements import (
    DECISION_FILE,
    PAYLOAD_TYPE,
    candidate_problem,
    canonical,
    decision_statement,
    manifest,
)


class BundleSigner(Protocol):
    """A key (PrivateKey) or a Sigstore identity (KeylessSigner): DSSE payload in, Sigstore bundle out."""

    def sign_bundle(self, payload: bytes, payload_type: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Signed:
    signature: Path
    decision: Path | None
    files: int
    subject_digest: str
    root_digest: str


def sign(
    model_dir: Path,
    key: BundleSigner,
    *,
    signature: Path | None = None,
    decision: Path | None = None,
    ignore: list[str] | tuple[str, ...] = (),
) -> Signed:
    signature = signature or model_dir / "model.sig"
    decision_out = signature.parent / DECISION_FILE
    # neither signature is part of the model
    m = manifest(model_dir, [*ignore, str(signature), str(decision_out)])
    payload = canonical(m.statement())
    rec = None
    if decision is not None:
        from mlops_gates.schemas import read_record

        rec = read_record(decision)  # a bad record fails before anything is signed
        problem = candidate_problem(rec["inputs"].get("models"), m)
        if problem:
            raise GateError(
                f"refused: {problem}",
                where=str(decision),
                hint="evaluate this folder as the candidate (models.candidate in the policy, or "
                "--model candidate=DIR), then sign it with that decision",
            )
    bundles = {signature: key.sign_bundle(payload, PAYLOAD_TYPE)}
    if rec is not None:
        bundles[decision_out] = key.sign_bundle(canonical(decision_statement(rec, m, payload)), PAYLOAD_TYPE)
    for path, bundle in bundles.items():  # written only once every signature is made
        path.write_text(json.dumps(bundle, indent=2) + "\n")
    return Signed(
        signature, decision_out if rec is not None else None, len(m.files), m.subject_digest, m.root_digest
    )
