"""The command line: parse options, call the library, map the outcome to an exit code. Nothing else."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mlops_gates import __version__
from mlops_gates.errors import ExitCode, GateError

if TYPE_CHECKING:
    from mlops_gates.evaluate import Outcome


def _summary(outcome: Outcome) -> str:
    from mlops_gates.report.format import ICON

    lines = [f"{ICON[outcome.decision.verdict]} {outcome.decision.verdict}"]
    for r in outcome.results:
        lines.append(f"  {r.status.value:<12} {r.name}: {r.reason[:160]}")
    return "\n".join(lines)


def _finish(outcome: Outcome) -> None:
    click.echo(_summary(outcome))
    for kind, path in outcome.files.items():
        click.echo(f"  {kind:<8} {path}")
    sys.exit(ExitCode.PROMOTE if outcome.decision.verdict == "PROMOTE" else ExitCode.BLOCKED)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlops-gates")
def cli() -> None:
    """A promotion gate for ML models: data integrity, accuracy, fairness and regression against the baseline.

    Exit codes: 0 PROMOTE, 1 HOLD or REJECT, 2 usage, policy or data error, 3 unexpected error.
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
def evaluate(policy_path: Path, out_dir: Path, models: tuple[str, ...]) -> None:
    """Evaluate the candidate against the policy and decide PROMOTE, HOLD or REJECT."""
    from mlops_gates.evaluate import run

    paths = {}
    for item in models:
        role, sep, path = item.partition("=")
        if not (sep and role and path):
            raise click.BadParameter(f"'{item}' is not ROLE=PATH", param_hint="--model")
        paths[role] = Path(path)
    _finish(run(policy_path, out_dir, model_paths=paths))


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

    _finish(run_demo(out_dir, echo=click.echo))


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
