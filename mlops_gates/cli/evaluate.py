"""Evaluate and decide, publish the decision, shard statistics, check a policy, run the demo."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from mlops_gates.cli.options import (
    engine_option,
    finish,
    lineage,
    out_dir_option,
    policy_option,
    post,
    print_error,
    publish_options,
    verdict_code,
)
from mlops_gates.errors import ExitCode, GateError


@click.command()
@policy_option
@out_dir_option
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="ROLE=PATH",
    help="A model file or folder whose digest goes into the record, e.g. candidate=model/.",
)
@click.option("--publish", "do_publish", is_flag=True, help="Post the decision to the PR/MR (see `publish`).")
@publish_options
@click.option(
    "--stats",
    "stats_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Decide from shards' statistics (`stats compute`) instead of reading the data (repeatable).",
)
@engine_option
@click.option(
    "--provenance",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The candidate's training attestation (attest-training): linked into the record by digest.",
)
def evaluate(
    policy_path: Path,
    out_dir: Path,
    models: tuple[str, ...],
    do_publish: bool,
    stats_files: tuple[Path, ...],
    engine: str,
    provenance: Path | None,
    **opts: object,
) -> None:
    """Evaluate the candidate against the policy and decide PROMOTE, HOLD or REJECT."""
    from mlops_gates.evaluation import run

    paths = {}
    for item in models:
        role, sep, path = item.partition("=")
        if not (sep and role and path):
            raise click.BadParameter(f"'{item}' is not ROLE=PATH", param_hint="--model")
        paths[role] = Path(path)
    outcome = run(
        policy_path,
        out_dir,
        model_paths=paths,
        stats_paths=list(stats_files),
        engine=engine,
        provenance=provenance,
    )
    finish(outcome)
    _lineage(policy_path, outcome.record, outcome.files["record"])
    if do_publish and not post(outcome.files["record"], opts) and opts["strict"]:
        sys.exit(ExitCode.PUBLISH_FAILED)
    sys.exit(verdict_code(outcome.decision.verdict))


def _lineage(policy_path: Path, record: dict[str, Any], record_file: Path) -> None:
    """The evaluation as an OpenLineage run: the data and models in, the decision record out."""
    from mlops_gates.digest import sha256_file
    from mlops_gates.platforms.openlineage import Dataset, enabled

    if not enabled():
        return
    inputs = [
        Dataset.file(d["path"], d["digest"])
        for d in record["inputs"]["data"].values()
        if d["format"] != "stats"
    ]
    inputs += [
        Dataset.model(Path(m["path"]).name, m["digest"]) for m in record["inputs"].get("models", {}).values()
    ]
    lineage(f"evaluate/{policy_path.stem}", inputs, [Dataset.file(record_file, sha256_file(record_file))])


@click.command("publish")
@click.argument("record", type=click.Path(dir_okay=False, path_type=Path))
@publish_options
def publish_cmd(record: Path, **opts: object) -> None:
    """Post RECORD (a decision.json) as one PR/MR comment, a status per gate and CI files.

    Exits with the decision's code, whatever happened to the posting (unless --strict).
    """
    from mlops_gates.schemas import read_record

    verdict = read_record(record)["decision"]
    if not post(record, opts) and opts["strict"]:
        sys.exit(ExitCode.PUBLISH_FAILED)
    sys.exit(verdict_code(verdict))


@click.group()
def stats() -> None:
    """Sufficient statistics per shard, for evaluation sets split across CI jobs."""


@stats.command("compute")
@policy_option
@click.option(
    "--data",
    "data_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="This shard's evaluation data (default: the policy's data.eval).",
)
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), required=True)
@engine_option
def stats_compute(policy_path: Path, data_path: Path | None, out_path: Path, engine: str) -> None:
    """Read one shard once and write its statistics; `evaluate --stats` adds the shards up and decides."""
    from mlops_gates.evaluation import compute
    from mlops_gates.stats.state import to_state, write

    pol, staged, s = compute(policy_path, data_path, engine)
    staged.cleanup()
    write(to_state(s, pol, data_path or pol.eval_data.path), out_path)
    click.echo(f"{s.rows:,} rows of {data_path or pol.eval_data.path} -> {out_path} ({len(s.cells):,} cells)")


@click.group()
def policy() -> None:
    """Check a policy file, or print its JSON Schema."""


@policy.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def policy_check(files: tuple[Path, ...]) -> None:
    """Validate each FILE and report every problem at once (exit 2 if any file has one)."""
    from mlops_gates import policy as pol

    failed: GateError | None = None
    for file in files:
        try:
            p = pol.load(file)
        except GateError as exc:
            print_error(exc)
            failed = exc
            continue
        names = ", ".join(g.name for g in p.gates)
        click.echo(f"{file}: valid ({len(p.gates)} gate{'s' if len(p.gates) != 1 else ''}: {names})")
    if failed is not None:
        sys.exit(failed.exit_code)


@policy.command("reference")
def policy_reference() -> None:
    """Print the policy reference (Markdown), generated from the JSON Schema."""
    from mlops_gates.policy.reference import markdown

    click.echo(markdown(), nl=False)


@policy.command("schema")
def policy_schema() -> None:
    """Print the policy's JSON Schema."""
    from mlops_gates import policy as pol

    click.echo(json.dumps(pol.schema(), indent=2))


@click.command()
@out_dir_option
def demo(out_dir: Path) -> None:
    """Gate a gradient-boosting candidate against a logistic-regression baseline on UCI Adult."""
    from mlops_gates.demo import run_demo

    outcome = run_demo(out_dir, echo=click.echo)
    finish(outcome)
    sys.exit(verdict_code(outcome.decision.verdict))
