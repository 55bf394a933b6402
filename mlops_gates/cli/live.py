"""`analyze`: a canary against the stable version on the same live traffic, for a rollout that asks again and
again."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from mlops_gates.cli.options import policy_option, verdict_code

LOGS = click.Path(exists=False, path_type=Path)


@click.command()
@click.option("--canary", required=True, help="The canary's (or A/B arm's) version, as the logs name it.")
@click.option("--stable", required=True, help="The stable version, as the logs name it.")
@click.option(
    "--requests",
    "requests",
    type=LOGS,
    multiple=True,
    required=True,
    help="Request logs: Parquet or JSON Lines files, or folders of them (repeatable); every look since the "
    "rollout began.",
)
@click.option(
    "--labels",
    type=LOGS,
    multiple=True,
    help="Labels that arrived later, joined by request id (repeatable; default: the logs' label column).",
)
@click.option(
    "--split",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    help="The canary's share of the two arms' traffic (default: the logs' split column, else the policy's).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the analysis here.",
)
@policy_option
def analyze(
    canary: str,
    stable: str,
    requests: tuple[Path, ...],
    labels: tuple[Path, ...],
    split: float | None,
    out: Path | None,
    policy_path: Path,
) -> None:
    """Judge a canary against stable with bounds valid at every look: exit 0 on PROMOTE, 1 on CONTINUE,
    ROLLBACK or HOLD (the analysis says which and why)."""
    from mlops_gates import policy as pol
    from mlops_gates.live.analyze import analyze as run

    record = run(pol.load(policy_path), list(requests), list(labels), canary, stable, split).record()
    text = json.dumps(record, indent=2) + "\n"
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    click.echo(text, nl=False)
    click.echo(f"{record['verdict']}: " + "; ".join(record["reasons"]), err=True)
    sys.exit(verdict_code(record["verdict"]))
