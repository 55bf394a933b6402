"""`watch`: is production still the world its model was judged in? And what a fired trigger sets off, for
`watch` and `analyze` alike: the rollback (through the registry's checks and audit log) and the alerts."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mlops_gates.cli.promotion import (
    ACTOR,
    LEDGER,
    OUT,
    POLICY,
    REGISTRY,
    _actor,
    _run_url,
    load_policy,
    registry_of,
)
from mlops_gates.errors import ExitCode, GateError

if TYPE_CHECKING:  # the command line imports the policy and the registry only when a command runs
    from mlops_gates.policy import Policy
    from mlops_gates.promotion.registry import Registry


def respond(
    reg: Registry, pol: Policy, name: str, env: str, actor: str, alert: Any, rollback: bool
) -> dict[str, Any]:
    """A rollback trigger fired: roll back (through the same checks and audit log as `rollback`) when asked,
    then tell people as the policy's promotion.alerts says. Returns what was done."""
    import dataclasses

    from mlops_gates.promotion.alerts import notify
    from mlops_gates.promotion.promote import rollback as do

    done: dict[str, Any] = {}
    if rollback:
        try:
            outcome = do(reg, pol, name, env, actor=actor, ci_run_url=_run_url())
            done["rollback"] = outcome.descriptor
            alert = dataclasses.replace(alert, action=f"rolled {env} back to {outcome.descriptor['digest']}")
        except GateError as exc:
            done["rollback_refused"] = exc.render()
            alert = dataclasses.replace(alert, action=f"rollback refused: {exc.message}")
    else:
        alert = dataclasses.replace(
            alert, action=f"recommended: mlops-gates rollback --model {name} --env {env}"
        )
    settings = pol.promotion.alerts if pol.promotion else {}
    if settings:
        done["alerts"] = notify(alert, settings, reg.ledger.root)
    for line in [alert.action, *done.get("alerts", [])]:
        click.echo(line, err=True)
    return done


@click.command()
@click.option("--model", "name", required=True)
@click.option(
    "--env", "env", required=True, help="The environment whose model is watched (its canary, if one runs)."
)
@click.option(
    "--data",
    "window",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="A window of production data: features, the served model's outputs, labels where known.",
)
@click.option("--rollback", "do_rollback", is_flag=True, help="Roll back at once when a trigger fires.")
@click.option("--every", default=None, help="Look again every DURATION (30s, 5m, 1h) until stopped.")
@click.option(
    "--count", type=click.IntRange(1), default=None, help="With --every: stop after this many looks."
)
@POLICY
@REGISTRY
@LEDGER
@ACTOR
@OUT
def watch(
    name: str,
    env: str,
    window: Path,
    do_rollback: bool,
    every: str | None,
    count: int | None,
    policy_path: Path,
    registry: str | None,
    ledger: Path | None,
    actor: str | None,
    out: Path | None,
) -> None:
    """Compare production data with the decision's evidence; exit 1 with a rollback recommendation when the
    policy's promotion.watch triggers fire (and roll back and alert, with --rollback and promotion.alerts).
    With --every, look again and again: the window file is read anew each time."""
    import time

    from mlops_gates.policy.build import seconds

    pause = seconds(every) if every else None
    pol = load_policy(policy_path)
    reg = registry_of(registry, ledger, policy_path, pol)
    fired = False
    looks = 0
    while True:
        fired |= _watch_once(reg, pol, name, env, window, do_rollback, actor, out)
        looks += 1
        if pause is None or (count is not None and looks >= count):
            break
        time.sleep(pause)
    if fired:
        sys.exit(ExitCode.BLOCKED)


def _watch_once(
    reg: Registry,
    pol: Policy,
    name: str,
    env: str,
    window: Path,
    do_rollback: bool,
    actor: str | None,
    out: Path | None,
) -> bool:
    from mlops_gates.promotion.alerts import Alert
    from mlops_gates.promotion.watch import watch as run_watch

    report = run_watch(reg, pol, name, env, window)
    for t in report["triggers"]:
        click.echo(f"TRIGGER {t}", err=True)
    if report["triggers"]:
        alert = Alert(
            name,
            env,
            "watch",
            report["digest"],
            "production drifted from the evidence it was judged on",
            tuple(report["triggers"]),
            evidence=str(window),
        )
        report.update(respond(reg, pol, name, env, _actor(actor) if do_rollback else "", alert, do_rollback))
    text = json.dumps(report, indent=2) + "\n"
    if out:
        out.write_text(text)
    click.echo(text, nl=False)
    if not report["triggers"]:
        click.echo(f"ok  {env} is still the world {report['digest'][:19]} was judged in", err=True)
    return bool(report["triggers"])
