"""Training lineage: an in-toto statement with SLSA provenance v1 that binds a model's digest to the code
(repository and commit), the training data's digests, the configuration and the environment (a lock file's
digest, or `pip freeze`'s), signed like the model. The decision record links it by digest, so a signed
decision reaches back through the training to the data."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from mlops_gates.digest import digest_path, hex_of, sha256_bytes, sha256_file
from mlops_gates.errors import GateError, VerificationFailed
from mlops_gates.report.escape import one_line
from mlops_gates.signing.envelope import unverified_statement
from mlops_gates.signing.statements import (
    DECISION_FILE,
    PAYLOAD_TYPE,
    STATEMENT_TYPE,
    canonical,
    manifest,
)

SLSA_PREDICATE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://mlops-gates.dev/training/v1"
LOCAL_BUILDER = "https://mlops-gates.dev/builders/local"


def code_origin(repository: str | None, commit: str | None) -> tuple[str, str]:
    """The code that trained the model: as given, else the CI run's, else the git checkout's."""
    if not (repository and commit):
        from mlops_gates.platforms import ci

        ctx = ci.context() or {}
        repository = repository or ctx.get("repository") or _git("config", "--get", "remote.origin.url")
        commit = commit or ctx.get("commit") or _git("rev-parse", "HEAD")
    if not (repository and commit):
        raise GateError(
            "which code trained the model is unknown",
            hint="pass --repository URL and --commit SHA (in CI and in a git checkout they are found)",
        )
    return repository, commit


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def environment(lock: Path | None) -> dict[str, Any]:
    """What the training ran with: a lock file's digest, or the digest of this interpreter's `pip freeze`."""
    if lock is not None:
        return {"kind": "lock", "name": lock.name, "digest": _file_digest(lock, "--lock")}
    out = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--all"], capture_output=True, check=False, timeout=120
    )
    if out.returncode != 0:
        raise GateError("pip freeze failed", hint="pass --lock FILE (a requirements or lock file)")
    return {"kind": "pip-freeze", "name": "pip freeze --all", "digest": sha256_bytes(out.stdout)}


def _file_digest(path: Path, option: str) -> str:
    if not path.exists():
        raise GateError("not found", where=str(path), hint=f"check {option}")
    return str(digest_path(path)["digest"])


def training_statement(
    model_dir: Path,
    *,
    repository: str,
    commit: str,
    data: list[Path],
    config: Path | None,
    env: dict[str, Any],
    run_url: str | None,
    now: dt.datetime,
) -> dict[str, Any]:
    signatures = ["model.sig", DECISION_FILE]  # if made already, they are not the model
    m = manifest(model_dir, signatures)
    inputs = [{"name": str(p), "digest": {"sha256": hex_of(_file_digest(p, "--data"))}} for p in data]
    deps: list[dict[str, Any]] = [
        {"uri": f"git+{repository}@{commit}", "digest": {"gitCommit": commit}},
        *({**d, "annotations": {"role": "training-data"}} for d in inputs),
        {
            "name": env["name"],
            "digest": {"sha256": hex_of(env["digest"])},
            "annotations": {"role": env["kind"]},
        },
    ]
    params: dict[str, Any] = {"repository": repository, "commit": commit}
    if config is not None:
        params["config"] = {
            "name": str(config),
            "digest": {"sha256": hex_of(_file_digest(config, "--config"))},
        }
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": m.name, "digest": {"sha256": m.root_digest}}],
        "predicateType": SLSA_PREDICATE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": params,
                "internalParameters": {"environment": env},
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": run_url or LOCAL_BUILDER},
                "metadata": {
                    "invocationId": run_url or "",
                    "finishedOn": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                },
            },
        },
    }


def attest_training(model_dir: Path, signer: Any, out: Path, **kw: Any) -> dict[str, Any]:
    """Sign the training statement into `out` (a Sigstore bundle); returns the statement."""
    st = training_statement(model_dir, **kw)
    bundle = signer.sign_bundle(canonical(st), PAYLOAD_TYPE)
    out.write_text(json.dumps(bundle, indent=2) + "\n")
    return st


def _payload(path: Path) -> dict[str, Any]:
    """The statement inside a training attestation, read (not verified: `verify --require-provenance` does)."""
    if not path.is_file():
        raise GateError("not found", where=str(path), hint="pass the file attest-training wrote")
    st = unverified_statement(path)
    if st is None:
        raise GateError("not a signed statement (a Sigstore bundle with a DSSE envelope)", where=str(path))
    if st.get("predicateType") != SLSA_PREDICATE:
        raise GateError(
            "not a training attestation (SLSA provenance v1)",
            where=str(path),
            hint="pass what attest-training wrote",
        )
    return st


def link(path: Path, candidate_digest: str) -> dict[str, Any]:
    """What the decision record keeps of a training attestation about its candidate: the file's digest and
    what it claims (code, data, configuration, environment)."""
    st = _payload(path)
    try:
        subject = st["subject"][0]["digest"]["sha256"]
        build = st["predicate"]["buildDefinition"]
        params, deps = build["externalParameters"], build["resolvedDependencies"]
        out = {
            "digest": sha256_file(path),
            "repository": params["repository"],
            "commit": params["commit"],
            "data": [
                {"name": d["name"], "digest": "sha256:" + d["digest"]["sha256"]}
                for d in deps
                if (d.get("annotations") or {}).get("role") == "training-data"
            ],
            "config": (
                {"name": params["config"]["name"], "digest": "sha256:" + params["config"]["digest"]["sha256"]}
                if "config" in params
                else None
            ),
            "environment": build["internalParameters"]["environment"],
        }
    except (KeyError, IndexError, TypeError):
        raise GateError(
            "the training attestation is not what attest-training writes", where=str(path)
        ) from None
    if f"sha256:{subject}" != candidate_digest:
        raise GateError(
            f"the training attestation is about sha256:{subject}, not the candidate {candidate_digest}",
            where=str(path),
            hint="pass the attestation made for this model folder",
        )
    _check_shape(out, path)
    return out


def _check_shape(link: dict[str, Any], path: Path) -> None:
    problem = link_problem(link)
    if problem is not None:
        raise GateError(
            f"the training attestation is not what attest-training writes ({problem})", where=str(path)
        )


def link_problem(link: Any) -> str | None:
    """Why a link is not of the record's shape (strings, digests), or None: what the record or a display takes
    from a file has that shape, whatever the file held."""
    import jsonschema

    from mlops_gates.schemas import schema_file

    defs = schema_file("decision.v1.schema.json")["$defs"]
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator({"$ref": "#/$defs/provenance", "$defs": defs}).iter_errors(link)
    )
    if error is None:
        return None
    return f"{'/'.join(map(str, error.absolute_path)) or 'the link'}: {error.message[:120]}"


def check_chain(
    path: Path, st: dict[str, Any], root_digest: str, decision: dict[str, Any] | None
) -> list[str]:
    """A verified training statement reaches the model (its subject is the model's root digest) and, when a
    decision attestation is present, is the one the decision linked. Returns the chain, for printing."""
    try:
        return _chain(path, st, root_digest, decision)
    except (KeyError, IndexError, TypeError, AttributeError):
        raise VerificationFailed(
            "provenance", "the training attestation is not what attest-training writes", str(path)
        ) from None


def _chain(path: Path, st: dict[str, Any], root_digest: str, decision: dict[str, Any] | None) -> list[str]:
    where = str(path)
    if st.get("predicateType") != SLSA_PREDICATE:
        raise VerificationFailed(
            "provenance", f"{st.get('predicateType')!r} is not SLSA provenance v1", where
        )
    got = {s.get("digest", {}).get("sha256") for s in st.get("subject", [])}
    if root_digest not in got:
        raise VerificationFailed(
            "provenance subject", "the training attestation is about another model", where
        )
    if decision is not None:
        linked = (decision["predicate"]["models"]["candidate"].get("provenance") or {}).get("digest")
        if linked is None:
            raise VerificationFailed("provenance link", "the decision links no training attestation", where)
        if linked != sha256_file(path):
            raise VerificationFailed(
                "provenance link", "the decision linked another training attestation", where
            )
    build = st["predicate"]["buildDefinition"]
    params = build["externalParameters"]
    chain = [f"model sha256:{root_digest}", f"trained from {params['repository']} at {params['commit']}"]
    for d in build["resolvedDependencies"]:
        role = (d.get("annotations") or {}).get("role")
        if role:
            chain.append(f"{role} {d['name']} sha256:{d['digest']['sha256']}")
    return [one_line(c) for c in chain]  # a name from the file cannot start a line of its own
