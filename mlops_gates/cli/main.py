"""The `mlops-gates` command: one group, each family's commands added from its module, errors caught once."""

from __future__ import annotations

import os
import sys

import click

from mlops_gates._version import __version__
from mlops_gates.cli import (
    audit,
    evaluate,
    feast,
    live,
    models,
    promotion,
    registry,
    signing,
    training,
    waivers,
    watch,
)
from mlops_gates.cli.options import print_error
from mlops_gates.errors import ExitCode, GateError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlops-gates")
def cli() -> None:
    """A promotion gate for ML models: data integrity, accuracy, fairness and regression against the baseline.

    Exit codes: 0 PROMOTE, 1 HOLD or REJECT, 2 usage, policy or data error, 3 unexpected error,
    4 publishing failed (only with --strict), 5 a service failed or could not be reached.
    """


for _command in (
    evaluate.evaluate,
    evaluate.publish_cmd,
    models.predict,
    models.scan,
    signing.sign_cmd,
    signing.verify_cmd,
    training.attest_training_cmd,
    evaluate.stats,
    models.deepchecks,
    feast.feast,
    evaluate.policy,
    evaluate.demo,
    promotion.register,
    promotion.promote,
    promotion.rollback,
    promotion.fetch,
    watch.watch,
    live.analyze,
    live.serve,
    audit.audit,
    waivers.waiver,
    registry.registry_group,
):
    cli.add_command(_command)


def main() -> None:
    """The command line, with stdout and stderr guarded: a value from data cannot start a CI workflow command
    or a GitLab log section on a line of its own."""
    from mlops_gates.report.escape import GuardedStream

    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = GuardedStream(out), GuardedStream(err)
    try:
        _main()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = out, err


def _main() -> None:
    try:
        cli.main(standalone_mode=False)
    except GateError as exc:
        print_error(exc)
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
