"""What the commands share: options declared once, and how an outcome is printed and becomes an exit code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from mlops_gates.errors import ExitCode, GateError

if TYPE_CHECKING:
    from mlops_gates.evaluation import Outcome

F = TypeVar("F", bound=Callable[..., Any])


def print_error(exc: GateError) -> None:
    """How the command line reports an error a user can act on: its label, what, where and the hint."""
    click.echo(f"{exc.label} {exc.render()}", err=True)


def summary(outcome: Outcome) -> str:
    from mlops_gates.report.format import ICON

    lines = [f"{ICON[outcome.decision.verdict]} {outcome.decision.verdict}"]
    for r in outcome.results:
        lines.append(f"  {r.status.value:<12} {r.name}: {r.reason[:160]}")
    return "\n".join(lines)


def verdict_code(verdict: str) -> ExitCode:
    return ExitCode.PROMOTE if verdict == "PROMOTE" else ExitCode.BLOCKED


def finish(outcome: Outcome) -> None:
    from mlops_gates.report.format import waivers

    click.echo(summary(outcome))
    applied, ignored = waivers(outcome.record)
    for line in applied:
        click.echo(f"  waiver  {line}")
    for line in ignored:  # loudly: a waiver someone relies on did not count
        click.echo(f"warning: waiver {line}", err=True)
    for kind, path in outcome.files.items():
        click.echo(f"  {kind:<8} {path}")


def post(record: Path, opts: dict[str, Any]) -> bool:
    """Post the record; a failure is reported and returned, never turned into another decision."""
    from mlops_gates.errors import PublishError
    from mlops_gates.platforms.publish import publish

    try:
        res = publish(record, opts["platform"], token_env=opts["token_env"], check_run=opts["check_run"])
    except PublishError as exc:
        click.echo(f"publish failed: {exc.render()}", err=True)
        return False
    done = [
        f"comment {res.comment}" if res.comment else None,
        f"{res.statuses} statuses" if res.statuses else None,
    ]
    click.echo(
        f"published to {res.platform}: " + (", ".join(d for d in done if d) or "files only"),
        err=res.platform == "local",
    )
    return True


def publish_options(f: F) -> F:
    """The options `publish` and `evaluate --publish` share."""
    f = click.option(
        "--platform",
        type=click.Choice(["auto", "github", "gitlab", "local"]),
        default="auto",
        show_default=True,
        help="Where to post; auto reads the CI environment.",
    )(f)
    f = click.option(
        "--token-env",
        default=None,
        metavar="NAME",
        help="Environment variable holding the API token (default GITHUB_TOKEN or GITLAB_TOKEN).",
    )(f)
    f = click.option("--check-run", is_flag=True, help="GitHub: also create a check run with the report.")(f)
    return click.option(
        "--strict", is_flag=True, help="Exit 4 when publishing fails (by default the decision's code stands)."
    )(f)


engine_option = click.option(
    "--engine",
    type=click.Choice(["auto", "arrow", "duckdb", "spark"]),
    default="auto",
    show_default=True,
    envvar="MLOPS_GATES_ENGINE",
    help="What computes the statistics: auto (DuckDB for a classification policy over Parquet, else Arrow), "
    "arrow (streaming here), duckdb (in process, multi-threaded) or spark (pyspark's session).",
)


ignore_option = click.option(
    "--ignore-path", "ignore", multiple=True, help="A path inside the model folder to leave out (repeatable)."
)
trust_config_option = click.option(
    "--trust-config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A Sigstore client trust configuration, for a private deployment (default: public-good Sigstore).",
)
policy_option = click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default="gates.yml",
    show_default=True,
    help="The policy file.",
)
out_dir_option = click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default="gate-out",
    show_default=True,
    help="Folder for decision.json, report.md, junit.xml and report.html.",
)


def lineage(job: str, inputs: list[Any], outputs: list[Any], **kw: Any) -> None:
    """Send an OpenLineage run event when OpenLineage is configured; a delivery failure is a warning only."""
    from mlops_gates.platforms import openlineage

    why = openlineage.emit(job, inputs, outputs, **kw)
    if why:
        click.echo(f"warning: {why}", err=True)


def setup_command(tool: str, where: str) -> click.Command:
    """`TOOL setup`: create the pinned environment that `where` ("module:attribute", a Sidecar, imported only
    when the command runs) describes."""

    @click.command(
        "setup",
        help=f"Create the virtual environment {tool} runs in, with pinned versions that work together.",
    )
    @click.option(
        "--path",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help=f"Where to create it (default: MLOPS_GATES_{tool.upper()}_ENV or ~/.cache/mlops-gates/{tool}-VERSION).",
    )
    @click.option("--force", is_flag=True, help="Recreate it even if it looks right.")
    def setup(path: Path | None, force: bool) -> None:
        import importlib

        module, attribute = where.split(":")
        sidecar = getattr(importlib.import_module(module), attribute)
        sidecar.setup(path or sidecar.default_path(), force=force, echo=click.echo)

    return setup
