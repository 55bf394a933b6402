"""The library's front door: policy file in, decision out. `evaluate` writes nothing (a gate that leaves a
file, deepchecks' HTML, writes only where `out_dir` says); `run` also writes the record and the reports."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_gates import policy as policy_mod
from mlops_gates.decision import Decision, decide, record
from mlops_gates.digest import digest_path, sha256_file
from mlops_gates.errors import GateError
from mlops_gates.gates import registry
from mlops_gates.gates.base import Context, GateResult
from mlops_gates.models.stage import Staged, stage
from mlops_gates.policy import Policy
from mlops_gates.stats.collect import EvalStats, collect


@dataclass
class Evaluation:
    """What a run decided, with the evidence: each gate's result, the record, and the statistics."""

    decision: Decision
    results: list[GateResult]
    record: dict[str, Any]
    stats: EvalStats


@dataclass
class Outcome:
    """An evaluation whose record and reports were written: `files` names them."""

    decision: Decision
    results: list[GateResult]
    record: dict[str, Any]
    files: dict[str, Path]


def compute(
    policy_path: str | Path, data: Path | None = None, engine: str = "auto", workdir: Path | None = None
) -> tuple[Policy, Staged, EvalStats]:
    """Read the evaluation data (or one shard of it) once into statistics; models predict first. Data from a
    feature store is fetched first, into `workdir` (kept beside the record) or a temporary folder."""
    pol = _load(policy_path, workdir)
    if data is not None:
        from mlops_gates.policy import dataset

        pol = dataclasses.replace(pol, eval_data=dataset({"path": str(data)}, Path.cwd()))
    from mlops_gates.stats.engines import choose

    beside = bool(pol.models) and choose(engine, pol) == "spark"  # Spark's executors predict beside the data
    staged = stage(pol, elsewhere=beside)  # when the policy names models: pin them and let them predict
    try:
        stats = collect(staged.policy, engine, staged.elsewhere)
        staged.settle()
        return pol, staged, stats
    except BaseException:
        staged.cleanup()
        raise


def _load(policy_path: str | Path, workdir: Path | None) -> Policy:
    """The policy, with data from a feature store fetched into `workdir` or a temporary folder."""
    pol = policy_mod.load(policy_path)
    if any(ds is not None and ds.format == "feast" for ds in (pol.eval_data, pol.reference, pol.training)):
        from mlops_gates.data.feature_store import resolve

        pol = resolve(pol, workdir or _scratch())
    return pol


def _scratch() -> Path:
    import atexit
    import shutil
    import tempfile

    where = Path(tempfile.mkdtemp(prefix="mlops-gates-data-"))
    atexit.register(shutil.rmtree, where, True)
    return where


def evaluate(
    policy_path: str | Path,
    *,
    model_paths: dict[str, Path] | None = None,
    stats_paths: list[Path] | None = None,
    engine: str = "auto",
    out_dir: str | Path | None = None,
    provenance: Path | None = None,
) -> Evaluation:
    """Validate the policy, read the data once (or merge shards' statistics), run every gate and decide.
    `provenance`: the candidate's training attestation, linked into the record by digest."""
    models = {role: digest_path(p) for role, p in (model_paths or {}).items()}
    if stats_paths:
        from mlops_gates.stats.state import merge

        pol = _load(policy_path, Path(out_dir) if out_dir is not None else None)
        staged, stats = Staged(pol), merge(stats_paths, pol)
        eval_input: dict[str, Any] = {
            "path": " + ".join(map(str, stats_paths)),
            "format": "stats",
            "digest": stats.data_digest,
        }
    else:
        workdir = Path(out_dir) if out_dir is not None else None
        pol, staged, stats = compute(policy_path, engine=engine, workdir=workdir)
        eval_digest = stats.data_digest if not pol.models else sha256_file(pol.eval_data.path)
        eval_input = {"path": str(pol.eval_data.path), "format": pol.eval_data.format, "digest": eval_digest}
        eval_input.update(pol.eval_data.origin or {})
    try:
        runs = {r: run.metrics for r, run in staged.runs.items()}
        where = Path(out_dir) if out_dir is not None else None
        ctx = Context(staged.policy, stats, pinned=staged.pinned, runs=runs, out_dir=where)
        results = [registry.run(spec, ctx) for spec in pol.gates]
    finally:
        staged.cleanup()
    models.update(staged.record())
    results, waived = _waivers(pol, results, models)
    decision = decide(results, pol)
    inputs: dict[str, Any] = {
        "policy": {"path": str(pol.path), "digest": pol.digest},
        "data": {"eval": eval_input},
    }
    for role, ds in (("reference", pol.reference), ("training", pol.training)):
        if ds is not None:
            inputs["data"][role] = {
                "path": str(ds.path),
                "format": ds.format,
                "digest": sha256_file(ds.path),
                **(ds.origin or {}),
            }
    if provenance is not None:
        _link_provenance(models, provenance)
    if models:
        inputs["models"] = models
    rec = record(pol, decision, results, inputs, stats.rows, waivers=waived)
    return Evaluation(decision, results, rec, stats)


def _waivers(
    pol: Policy, results: list[GateResult], models: dict[str, Any]
) -> tuple[list[GateResult], dict[str, Any] | None]:
    """Valid waivers in the policy's waivers.dir applied to the results; the author is the CI change's."""
    if pol.waivers is None:
        return results, None
    import datetime as dt

    from mlops_gates.gates import waivers
    from mlops_gates.platforms import ci

    author = (ci.context() or {}).get("author")
    model = (models.get("candidate") or {}).get("digest")
    return waivers.apply(pol, results, model, author, dt.datetime.now(dt.timezone.utc))


def _link_provenance(models: dict[str, Any], path: Path) -> None:
    from mlops_gates.signing.provenance import link

    if "candidate" not in models:
        raise GateError(
            "a training attestation is about the candidate, and there is none",
            hint="name it: --model candidate=DIR, or models.candidate in the policy",
        )
    models["candidate"]["provenance"] = link(path, models["candidate"]["digest"])


def run(
    policy_path: str | Path,
    out_dir: str | Path,
    *,
    model_paths: dict[str, Path] | None = None,
    stats_paths: list[Path] | None = None,
    engine: str = "auto",
    provenance: Path | None = None,
) -> Outcome:
    """`evaluate`, then write the record and every report into `out_dir`."""
    from mlops_gates.report import write_all
    from mlops_gates.stats.curves import curves

    ev = evaluate(
        policy_path,
        model_paths=model_paths,
        stats_paths=stats_paths,
        engine=engine,
        out_dir=out_dir,
        provenance=provenance,
    )
    files = write_all(ev.record, Path(out_dir), curves=curves(ev.stats))
    return Outcome(ev.decision, ev.results, ev.record, files)
