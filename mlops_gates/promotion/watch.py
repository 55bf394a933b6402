"""Watch: is production still the world the decision was made in? A window of production data is compared
with the decision's own evidence (the evaluation data it names by digest): drift of features and of the
model's outputs, and the policy's metrics on rows whose labels have arrived. Triggers recommend a rollback."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlops_gates.digest import sha256_file
from mlops_gates.errors import DataError, GateError
from mlops_gates.policy import Dataset, GateSpec, ModelColumns, Policy, Threshold, dataset
from mlops_gates.promotion.promote import state
from mlops_gates.promotion.registry import Registry, Version
from mlops_gates.promotion.rules import promotion_of, verify_version

MIN_ROWS = 200


def _outputs(pol: Policy, version: Version, data: Dataset, tmp: Path, role: str) -> pa.Table:
    """The model's outputs on a table: its prediction columns when the policy names them, else the registered
    version itself predicts (in its own process, as in the gate)."""
    from mlops_gates.data.reader import column_names, read_table

    mc = pol.columns.candidate
    if mc is not None:
        wanted = [c for c in (mc.prediction, *mc.score) if c]
        missing = [c for c in wanted if c not in column_names(data)]
        if missing:
            raise DataError(
                f"has no {', '.join(missing)}: the model's outputs are needed to watch them",
                where=str(data.path),
                hint="log the served model's predictions in the window, under the policy's column names",
            )
        return read_table(data, wanted)
    from mlops_gates.models.predict import run_child
    from mlops_gates.models.stage import task_of

    spec = dataclasses.replace(pol.models["candidate"], path=version.files)
    exclude = (pol.columns.label, *([pol.columns.weight] if pol.columns.weight else []))
    # the predict step checks these digests once more right before it loads the files
    run = run_child(role, spec, task_of(pol), data, tmp, exclude, version.digests)
    return pq.read_table(run.predictions)


def _prediction_column(pol: Policy, t: pa.Table) -> pa.Array:
    """One column to compare: the score (binary), the predicted class (multiclass) or the value (regression)."""
    if pol.task == "multiclass" and t.num_columns > 1:
        return pa.array(
            np.asarray(pol.classes, dtype=object)[np.argmax(np.column_stack(t.columns), axis=1)].astype(str)
        )
    return t.column(0).combine_chunks()


def watch(reg: Registry, pol: Policy, model: str, env: str, window: Path) -> dict[str, Any]:
    from mlops_gates.data.reader import column_names, read_table
    from mlops_gates.stats.drift import ks, psi
    from mlops_gates.stats.integrity import reference_drift

    promo = promotion_of(pol)
    _, spec = promo.env(env)
    cfg = promo.watch
    pointer = state(reg)[1].get((model, env))
    if pointer is None or pointer.digest is None and pointer.canary is None:
        raise GateError(f"{env} serves no version of {model}", where=reg.location)
    digest = pointer.canary["digest"] if pointer.canary else pointer.digest
    assert digest is not None
    version = reg.store.version(model, digest)
    predicate, _ = verify_version(version, spec)  # the evidence itself must still verify
    evidence = predicate["data"]["eval"]
    ref = pol.eval_data
    if evidence["format"] != "stats" and sha256_file(ref.path) != evidence["digest"]:
        raise GateError(
            "the evaluation data is not the one the decision was made on",
            where=str(ref.path),
            hint=f"check out the data with digest {evidence['digest']} (the decision's evidence)",
        )
    win = dataset({"path": str(window)}, Path.cwd())
    names = column_names(win)
    cols = pol.columns
    outputs = {c for mc in (cols.candidate, cols.baseline) if mc for c in (mc.prediction, *mc.score) if c}
    features = list(
        cfg.get("features")
        or cols.features
        or [c for c in column_names(ref) if c in names and c not in outputs | {cols.label, cols.weight}]
    )
    ref_table = read_table(ref, features)
    win_table = read_table(win, features)
    report: dict[str, Any] = {
        "model": model,
        "environment": env,
        "digest": digest,
        "canary": bool(pointer.canary),
        "window": {"path": str(window), "digest": sha256_file(win.path), "rows": win_table.num_rows},
        "evidence": {
            "path": str(ref.path),
            "digest": evidence["digest"],
            "decided_at": predicate["decided_at"],
        },
        "drift": {},
        "metrics": [],
        "triggers": [],
    }
    triggers: list[str] = report["triggers"]
    for name, d in reference_drift(ref_table, features).items():
        d.add(win_table.column(name))
        row = {"psi": round(psi(d.ref, d.cur), 6)}
        if d.kind == "numeric":
            row["ks"] = round(ks(d.ks_ref, d.ks_cur), 6)
        report["drift"][name] = row
        if "max_psi" in cfg and row["psi"] > cfg["max_psi"]:
            triggers.append(f"{name}: PSI {row['psi']:.3f} > {cfg['max_psi']}")
        if "max_ks" in cfg and row.get("ks", 0) > cfg["max_ks"]:
            triggers.append(f"{name}: KS {row['ks']:.3f} > {cfg['max_ks']}")
    with tempfile.TemporaryDirectory(prefix="mlops-gates-watch-") as tmp_:
        tmp = Path(tmp_)
        win_out = _outputs(pol, version, win, tmp, "window")
        if "max_prediction_psi" in cfg:
            ref_out = _outputs(pol, version, ref, tmp, "evidence")
            both = {"prediction": _prediction_column(pol, ref_out)}
            d = reference_drift(pa.table(both), ["prediction"])["prediction"]
            d.add(_prediction_column(pol, win_out))
            value = round(psi(d.ref, d.cur), 6)
            report["prediction_psi"] = value
            if value > cfg["max_prediction_psi"]:
                triggers.append(f"the model's outputs: PSI {value:.3f} > {cfg['max_prediction_psi']}")
        if cfg.get("metrics"):
            report["metrics"] = _metrics(pol, win, win_out, cfg, tmp, triggers, report)
    report["recommendation"] = "rollback" if triggers else "keep"
    return report


def _metrics(
    pol: Policy,
    win: Dataset,
    outputs: pa.Table,
    cfg: dict[str, Any],
    tmp: Path,
    triggers: list[str],
    report: dict,
) -> list[dict[str, Any]]:
    """The policy's watch metrics on the labelled rows, judged by the gate's own engine (with intervals)."""
    from mlops_gates.data.reader import column_names, read_table
    from mlops_gates.gates import registry
    from mlops_gates.gates.base import Context
    from mlops_gates.stats.collect import collect

    cols = pol.columns
    if cols.label not in column_names(win):
        report["labelled_rows"] = 0
        return []
    keep = [c for c in column_names(win) if c not in outputs.column_names]
    table = read_table(win, keep)
    for name in outputs.column_names:
        table = table.append_column(f"__out_{name}", outputs.column(name))
    table = table.filter(table.column(cols.label).is_valid())
    report["labelled_rows"] = table.num_rows
    if table.num_rows < int(cfg.get("min_rows", MIN_ROWS)):
        return []
    pq.write_table(table, tmp / "labelled.parquet")
    if cols.candidate is not None:
        src = cols.candidate
    else:  # the names the predict step writes
        from mlops_gates.models.predict import output_columns
        from mlops_gates.models.stage import task_of

        out_names = output_columns(task_of(pol))
        src = (
            ModelColumns(out_names[0], ())
            if pol.task == "regression"
            else ModelColumns(None, tuple(out_names))
        )
    mc = ModelColumns(src.prediction and f"__out_{src.prediction}", tuple(f"__out_{c}" for c in src.score))
    gate = GateSpec(
        "accuracy",
        "watch",
        "fail",
        {"type": "accuracy"},
        tuple(
            Threshold(m["metric"], m["op"], float(m["value"]), m.get("severity", "fail"))
            for m in cfg["metrics"]
        ),
    )
    watched = dataclasses.replace(
        pol,
        eval_data=Dataset(tmp / "labelled.parquet", "parquet"),
        reference=None,
        training=None,
        columns=dataclasses.replace(cols, candidate=mc, baseline=None, slices=(), sensitive=()),
        gates=(gate,),
        models={},
    )
    result = registry.run(gate, Context(watched, collect(watched)))
    if result.status.value == "ERROR":  # fail closed: a watch that cannot judge does not say "keep"
        triggers.append(f"the metrics could not be judged: {result.reason}")
    out = []
    for m in result.to_json()["metrics"]:
        row = {k: m.get(k) for k in ("metric", "status", "value", "ci", "n", "comparator", "threshold")}
        out.append(row)
        if m["status"] in ("FAIL", "ERROR"):
            triggers.append(f"{m['metric']} {m['value']:.4f} on {m['n']} labelled rows: {m['status']}")
    return out
