"""The library's front door: policy file in, decision record and reports out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_gates import policy as policy_mod
from mlops_gates.decision import Decision, decide, record
from mlops_gates.digest import digest_path, sha256_file
from mlops_gates.gates import registry
from mlops_gates.gates.base import Context, GateResult
from mlops_gates.models.stage import stage
from mlops_gates.stats.collect import collect


@dataclass
class Outcome:
    decision: Decision
    results: list[GateResult]
    record: dict[str, Any]
    files: dict[str, Path]


def run(
    policy_path: str | Path, out_dir: str | Path, *, model_paths: dict[str, Path] | None = None
) -> Outcome:
    """Validate the policy, read the data once, run every gate, decide, and write the outputs."""
    from mlops_gates.report import write_all

    pol = policy_mod.load(policy_path)
    models = {role: digest_path(p) for role, p in (model_paths or {}).items()}
    staged = stage(pol)  # when the policy names models: pin them and let them predict
    try:
        stats = collect(staged.policy)
        ctx = Context(
            staged.policy,
            stats,
            pinned=staged.pinned,
            runs={r: run.metrics for r, run in staged.runs.items()},
            out_dir=Path(out_dir),
        )
        results = [registry.run(spec, ctx) for spec in pol.gates]
    finally:
        staged.cleanup()
    decision = decide(results, pol)
    eval_digest = stats.data_digest if not pol.models else sha256_file(pol.eval_data.path)
    inputs: dict[str, Any] = {
        "policy": {"path": str(pol.path), "digest": pol.digest},
        "data": {
            "eval": {"path": str(pol.eval_data.path), "format": pol.eval_data.format, "digest": eval_digest}
        },
    }
    for role, ds in (("reference", pol.reference), ("training", pol.training)):
        if ds is not None:
            inputs["data"][role] = {"path": str(ds.path), "format": ds.format, "digest": sha256_file(ds.path)}
    models.update(staged.record())
    if models:
        inputs["models"] = models
    rec = record(pol, decision, results, inputs, stats.rows)
    files = write_all(rec, Path(out_dir), stats=stats, policy=pol)
    return Outcome(decision, results, rec, files)
