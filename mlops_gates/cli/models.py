"""Models: predict (the child step that scores data), scan (without loading), deepchecks' environment."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from mlops_gates.cli.options import setup_command
from mlops_gates.errors import ExitCode, GateError
from mlops_gates.models import FORMATS


@click.command()
@click.option("--model", "model_path", type=click.Path(path_type=Path), help="The model file or folder.")
@click.option(
    "--data",
    "data_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Features: Parquet, CSV or JSONL.",
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default="predictions.parquet",
    show_default=True,
)
@click.option(
    "--task", type=click.Choice(["binary", "multiclass", "regression"]), default="binary", show_default=True
)
@click.option(
    "--positive-label",
    default="1",
    show_default=True,
    help="Binary: the positive class, as the model names it.",
)
@click.option("--classes", default=None, help="Multiclass: the classes, comma-separated, in order.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="auto",
    show_default=True,
)
@click.option(
    "--trust", type=click.Choice(["pickle"]), default=None, help="Allow pickle/joblib (never on a fork's PR)."
)
@click.option(
    "--class", "model_class", default=None, metavar="MODULE:CLASS", help="The class weights load into."
)
@click.option("--init", "init_json", default="{}", metavar="JSON", help="Keyword arguments for --class.")
@click.option("--features", default=None, help="Feature columns, comma-separated, in the model's order.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N (PyTorch).")
@click.option("--batch-size", type=click.IntRange(min=1), default=4096, show_default=True)
@click.option("--job", type=click.Path(dir_okay=False, path_type=Path), hidden=True)
def predict(
    model_path: Path | None,
    data_path: Path | None,
    out_path: Path,
    task: str,
    positive_label: str,
    classes: str | None,
    fmt: str,
    trust: str | None,
    model_class: str | None,
    init_json: str,
    features: str | None,
    device: str,
    batch_size: int,
    job: Path | None,
) -> None:
    """Score a model on a table of features and write its scores (score, score:<class> or prediction) to Parquet."""
    from mlops_gates.models import predict as P
    from mlops_gates.models.base import Task
    from mlops_gates.models.pin import pin, unpin
    from mlops_gates.policy import Dataset, ModelSpec, dataset

    if job is not None:
        P.run_job(job)
        return
    if model_path is None or data_path is None:
        raise click.UsageError("predict needs --model and --data")
    try:
        init = json.loads(init_json)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--init") from None
    kind = Task(task, positive_label, tuple(c.strip() for c in classes.split(",")) if classes else ())
    if task == "multiclass" and not kind.classes:
        raise click.UsageError("a multiclass task needs --classes")
    pinned = pin(model_path)
    try:
        spec = ModelSpec(
            pinned.path,
            fmt,
            trust,
            model_class,
            init,
            tuple(features.split(",")) if features else None,
            device,
            batch_size,
        )
        data: Dataset = dataset({"path": str(data_path)}, Path.cwd())
        m = P.predict(spec, kind, data, out_path, expected=pinned.files)
    finally:
        unpin(pinned)
    click.echo(
        f"{m['rows']:,} rows scored by {model_path} ({pinned.digest}) -> {out_path}; "
        f"p50 {m['latency_p50_ms']:.2f} ms, p95 {m['latency_p95_ms']:.2f} ms per batch of {batch_size}"
    )


@click.command()
@click.argument("model_path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def scan(model_path: Path, as_json: bool) -> None:
    """Identify every file of a model and walk its pickles without loading them. Exit 0 only when all is safe."""
    from dataclasses import asdict

    from mlops_gates.models.scan import scan as scan_model

    if not model_path.exists():
        raise GateError("not found", where=str(model_path), hint="pass a model file or folder")
    reports = scan_model(model_path)
    if as_json:
        click.echo(json.dumps([asdict(r) for r in reports], indent=2))
    else:
        for r in reports:
            verdict = "safe" if r.safe else "UNSAFE" if r.safe is False else "unknown"
            extra = f": imports {', '.join(r.unsafe)}" if r.unsafe else (f": {r.note}" if r.note else "")
            click.echo(f"{verdict:<8} {r.kind:<13} {r.path}{extra}")
    sys.exit(ExitCode.OK if all(r.safe for r in reports) else ExitCode.BLOCKED)


@click.group()
def deepchecks() -> None:
    """deepchecks' suites as a gate, in their own environment."""


deepchecks.add_command(setup_command("deepchecks", "mlops_gates.gates.deepchecks.env:DEEPCHECKS"))
