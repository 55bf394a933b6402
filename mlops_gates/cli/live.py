"""`analyze`: a canary against the stable version on the same live traffic, for a rollout that asks again and
again."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from mlops_gates.cli.options import policy_option, verdict_code
from mlops_gates.cli.promotion import ACTOR, LEDGER, REGISTRY, _actor, registry_of
from mlops_gates.cli.watch import respond

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
@click.option(
    "--rollback",
    "rollback_to",
    default=None,
    metavar="MODEL@ENV",
    help="On ROLLBACK, roll this model's environment back (the registry's checks and audit log) and alert as "
    "promotion.alerts says.",
)
@policy_option
@REGISTRY
@LEDGER
@ACTOR
def analyze(
    canary: str,
    stable: str,
    requests: tuple[Path, ...],
    labels: tuple[Path, ...],
    split: float | None,
    out: Path | None,
    rollback_to: str | None,
    policy_path: Path,
    registry: str | None,
    ledger: Path | None,
    actor: str | None,
) -> None:
    """Judge a canary against stable with bounds valid at every look: exit 0 on PROMOTE, 1 on CONTINUE,
    ROLLBACK or HOLD (the analysis says which and why)."""
    from mlops_gates import policy as P
    from mlops_gates.live.analyze import analyze as run

    pol = P.load(policy_path)
    target = _target(rollback_to)
    record = run(pol, list(requests), list(labels), canary, stable, split).record()
    if target and record["verdict"] == "ROLLBACK":
        from mlops_gates.promotion.alerts import Alert

        name, env = target
        reg = registry_of(registry, ledger, policy_path, pol)
        alert = Alert(
            name,
            env,
            "live analysis",
            canary,
            f"canary {canary} is worse than {stable}",
            tuple(record["reasons"]),
            evidence=str(out) if out else None,
        )
        record["response"] = respond(reg, pol, name, env, _actor(actor), alert, rollback=True)
    text = json.dumps(record, indent=2) + "\n"
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    click.echo(text, nl=False)
    click.echo(f"{record['verdict']}: " + "; ".join(record["reasons"]), err=True)
    sys.exit(verdict_code(record["verdict"]))


def _rollback_action(
    pol: Any,
    policy_path: Path,
    target: tuple[str, str],
    registry: str | None,
    ledger: Path | None,
    actor: str | None,
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """What serve's POST /v1/rollback does on a ROLLBACK: the registry's rollback, then the alerts."""
    from mlops_gates.promotion.alerts import Alert

    name, env = target
    reg = registry_of(registry, ledger, policy_path, pol)
    who = _actor(actor)

    def act(record: dict[str, Any]) -> dict[str, Any]:
        summary = f"canary {record['canary']} is worse than {record['stable']}"
        alert = Alert(name, env, "live analysis", record["canary"], summary, tuple(record["reasons"]))
        return respond(reg, pol, name, env, who, alert, rollback=True)

    return act


def _target(value: str | None) -> tuple[str, str] | None:
    if value is None:
        return None
    name, at, env = value.partition("@")
    if not (name and at and env):
        raise click.BadParameter("give the model and the environment as MODEL@ENV", param_hint="--rollback")
    return name, env


@click.command()
@click.option(
    "--requests",
    "requests",
    type=LOGS,
    multiple=True,
    required=True,
    help="Where the request logs are written (folders or files; repeatable).",
)
@click.option(
    "--labels", type=LOGS, multiple=True, help="Where labels arrive (folders or files; repeatable)."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option(
    "--model", "model", default="model", show_default=True, help="The model's name, for the metrics' labels."
)
@click.option(
    "--env",
    "environment",
    default="production",
    show_default=True,
    help="The environment, for the metrics' labels.",
)
@click.option(
    "--rollback",
    "rollback_to",
    default=None,
    metavar="MODEL@ENV",
    help="Enable POST /v1/rollback (bearer token from --token-env): on ROLLBACK, roll this model's environment "
    "back and alert.",
)
@click.option(
    "--token-env",
    default="MLOPS_GATES_SERVE_TOKEN",
    show_default=True,
    help="The environment variable holding the bearer token that POST /v1/rollback requires.",
)
@policy_option
@REGISTRY
@LEDGER
@ACTOR
def serve(
    requests: tuple[Path, ...],
    labels: tuple[Path, ...],
    host: str,
    port: int,
    model: str,
    environment: str,
    rollback_to: str | None,
    token_env: str,
    policy_path: Path,
    registry: str | None,
    ledger: Path | None,
    actor: str | None,
) -> None:
    """Serve the live analysis to rollout controllers: Argo Rollouts' web metrics (GET /v1/analysis),
    Flagger's webhooks (POST /flagger/HOOK), Prometheus (GET /metrics), /healthz and /readyz; read-only, but for
    POST /v1/rollback (with --rollback and a bearer token)."""
    import os

    import uvicorn

    from mlops_gates import policy as P
    from mlops_gates.live.api import app
    from mlops_gates.live.serve import Service

    pol = P.load(policy_path)
    service = Service(pol, list(requests), list(labels))
    target = _target(rollback_to)
    token = os.environ.get(token_env)
    if target and not token:
        raise click.UsageError(f"--rollback needs a bearer token: set ${token_env}")
    act = _rollback_action(pol, policy_path, target, registry, ledger, actor) if target else None
    click.echo(f"serving the live analysis of {model} in {environment} on http://{host}:{port}", err=True)
    uvicorn.run(
        app(service, model, environment, act, token if act else None),
        host=host,
        port=port,
        log_level="warning",
        timeout_keep_alive=5,
        limit_concurrency=64,
    )
