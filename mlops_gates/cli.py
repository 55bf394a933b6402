"""The command line: parse options, call the library, map the outcome to an exit code. Nothing else."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from mlops_gates import __version__
from mlops_gates.errors import ExitCode, GateError

if TYPE_CHECKING:
    from mlops_gates.evaluate import Outcome

F = TypeVar("F", bound=Callable[..., Any])


def _summary(outcome: Outcome) -> str:
    from mlops_gates.report.format import ICON

    lines = [f"{ICON[outcome.decision.verdict]} {outcome.decision.verdict}"]
    for r in outcome.results:
        lines.append(f"  {r.status.value:<12} {r.name}: {r.reason[:160]}")
    return "\n".join(lines)


def _verdict_code(verdict: str) -> ExitCode:
    return ExitCode.PROMOTE if verdict == "PROMOTE" else ExitCode.BLOCKED


def _finish(outcome: Outcome) -> None:
    click.echo(_summary(outcome))
    for kind, path in outcome.files.items():
        click.echo(f"  {kind:<8} {path}")


def _publish(record: Path, opts: dict[str, Any]) -> bool:
    """Post the record; a failure is reported and returned, never turned into another decision."""
    from mlops_gates.platforms.http import PublishError
    from mlops_gates.publish import publish

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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlops-gates")
def cli() -> None:
    """A promotion gate for ML models: data integrity, accuracy, fairness and regression against the baseline.

    Exit codes: 0 PROMOTE, 1 HOLD or REJECT, 2 usage, policy or data error, 3 unexpected error,
    4 publishing failed (only with --strict).
    """


@cli.command()
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default="gates.yml",
    show_default=True,
    help="The policy file.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default="gate-out",
    show_default=True,
    help="Folder for decision.json, report.md, junit.xml and report.html.",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="ROLE=PATH",
    help="A model file or folder whose digest goes into the record, e.g. candidate=model/.",
)
@click.option("--publish", "do_publish", is_flag=True, help="Post the decision to the PR/MR (see `publish`).")
@publish_options
def evaluate(
    policy_path: Path, out_dir: Path, models: tuple[str, ...], do_publish: bool, **opts: object
) -> None:
    """Evaluate the candidate against the policy and decide PROMOTE, HOLD or REJECT."""
    from mlops_gates.evaluate import run

    paths = {}
    for item in models:
        role, sep, path = item.partition("=")
        if not (sep and role and path):
            raise click.BadParameter(f"'{item}' is not ROLE=PATH", param_hint="--model")
        paths[role] = Path(path)
    outcome = run(policy_path, out_dir, model_paths=paths)
    _finish(outcome)
    if do_publish and not _publish(outcome.files["record"], opts) and opts["strict"]:
        sys.exit(ExitCode.PUBLISH_FAILED)
    sys.exit(_verdict_code(outcome.decision.verdict))


@cli.command("publish")
@click.argument("record", type=click.Path(dir_okay=False, path_type=Path))
@publish_options
def publish_cmd(record: Path, **opts: object) -> None:
    """Post RECORD (a decision.json) as one PR/MR comment, a status per gate and CI files.

    Exits with the decision's code, whatever happened to the posting (unless --strict).
    """
    from mlops_gates.publish import load_record

    verdict = load_record(record)["decision"]
    if not _publish(record, opts) and opts["strict"]:
        sys.exit(ExitCode.PUBLISH_FAILED)
    sys.exit(_verdict_code(verdict))


@cli.group()
def policy() -> None:
    """Check a policy file, or print its JSON Schema."""


@policy.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def policy_check(file: Path) -> None:
    """Validate FILE and report every problem at once."""
    from mlops_gates import policy as pol

    p = pol.load(file)
    click.echo(
        f"{file}: valid ({len(p.gates)} gate{'s' if len(p.gates) != 1 else ''}: {', '.join(g.name for g in p.gates)})"
    )


@policy.command("schema")
def policy_schema() -> None:
    """Print the policy's JSON Schema."""
    from mlops_gates import policy as pol

    click.echo(json.dumps(pol.schema(), indent=2))


@cli.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default="gate-out",
    show_default=True,
)
def demo(out_dir: Path) -> None:
    """Gate a gradient-boosting candidate against a logistic-regression baseline on UCI Adult."""
    from mlops_gates.demo import run_demo

    outcome = run_demo(out_dir, echo=click.echo)
    _finish(outcome)
    sys.exit(_verdict_code(outcome.decision.verdict))


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except GateError as exc:
        click.echo(f"error: {exc.render()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(ExitCode.USAGE)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.USAGE)
    except SystemExit:
        raise
    except Exception as exc:
        if os.environ.get("MLOPS_GATES_DEBUG"):
            raise
        click.echo(
            f"unexpected error: {type(exc).__name__}: {exc}\n  set MLOPS_GATES_DEBUG=1 for the traceback, and please report it",
            err=True,
        )
        sys.exit(ExitCode.UNEXPECTED)
