"""The promotion commands: register, promote, rollback, fetch (the audit commands are in cli/audit.py). Messages go to stderr, the deployment
descriptor (JSON) to stdout, so `mlops-gates promote ... > deploy.json` works."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mlops_gates.cli.options import lineage, policy_option
from mlops_gates.errors import GateError

if TYPE_CHECKING:
    from mlops_gates.policy import Policy
    from mlops_gates.promotion.registry import Registry

POLICY = policy_option
REGISTRY = click.option(
    "--registry",
    default=None,
    help="A registry folder or mlflow+http(s)://HOST:PORT (default: the policy's promotion.registry).",
)
LEDGER = click.option(
    "--ledger",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The audit log's folder (default: the policy's promotion.ledger, or the registry folder).",
)
ACTOR = click.option(
    "--actor",
    default=None,
    help="Who is acting, outside CI. In CI the platform says (GITHUB_TRIGGERING_ACTOR or GITHUB_ACTOR, "
    "GITLAB_USER_LOGIN) and a different --actor is refused.",
)
OUT = click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the descriptor here.",
)


def _who(actor: str | None) -> str | None:
    """Who is acting. In CI the platform says, and an --actor that says otherwise is refused, not obeyed
    (it would let anyone who can edit a workflow act as an approver)."""
    from mlops_gates.platforms import ci as platforms_ci

    ci = platforms_ci.actor(dict(os.environ))
    if ci is not None:
        platform, login = ci
        if not login:
            raise GateError(
                f"{platform} did not say who is acting",
                hint="run in a job the platform starts for a user (GITHUB_ACTOR / GITLAB_USER_LOGIN are set)",
            )
        if actor is not None and actor != login:
            raise GateError(
                f"refused: --actor {actor} differs from the user {platform} says is acting ({login})",
                hint="drop --actor in CI: the platform names who acts",
            )
        return login
    return actor or os.environ.get("GITHUB_ACTOR") or os.environ.get("GITLAB_USER_LOGIN")


def _actor(actor: str | None) -> str:
    found = _who(actor)
    if not found:
        raise click.UsageError("who is acting? pass --actor NAME (in CI it comes from the platform)")
    return found


def registry_of(
    registry: str | None, ledger: Path | None, policy_path: Path, pol: Policy | None = None
) -> Registry:
    """The registry and ledger the options name, else the policy's (read only when needed)."""
    from mlops_gates.promotion.stores import open_registry

    enough = registry is not None and (ledger is not None or "://" not in registry)
    if pol is None and (not enough or policy_path.is_file()):  # the policy may say the registry is encrypted
        pol = load_policy(policy_path)
    promo = pol.promotion if pol else None
    where = registry or (promo.registry if promo else None)
    if not where:
        raise GateError(
            "no registry given",
            where=str(policy_path),
            hint="pass --registry PATH, or set promotion.registry in the policy",
        )
    return open_registry(where, ledger or (promo.ledger if promo else None), bool(promo and promo.encrypted))


def load_policy(policy_path: Path) -> Policy:
    from mlops_gates import policy as pol

    return pol.load(policy_path)


def _run_url() -> str | None:
    from mlops_gates.platforms import ci

    return (ci.context() or {}).get("run_url")


def _emit(outcome: Any, out: Path | None) -> None:
    for c in outcome.checks:
        click.echo(f"ok  {c}", err=True)
    text = json.dumps(outcome.descriptor, indent=2) + "\n"
    if out:
        out.write_text(text)
    click.echo(text, nl=False)


@click.command()
@click.argument("model_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--model", "name", required=True, help="The model's name in the registry.")
@click.option(
    "--signature",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Its signature (default MODEL_DIR/model.sig when present).",
)
@click.option(
    "--decision",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Its decision attestation (default MODEL_DIR/model.decision.sig when present).",
)
@REGISTRY
@LEDGER
@POLICY
@ACTOR
def register(
    model_dir: Path,
    name: str,
    signature: Path | None,
    decision: Path | None,
    registry: str | None,
    ledger: Path | None,
    policy_path: Path,
    actor: str | None,
) -> None:
    """Add a model folder to the registry as a write-once version; prints its digest."""
    from mlops_gates.promotion.promote import register as do

    reg = registry_of(registry, ledger, policy_path)
    sig = signature or (model_dir / "model.sig" if (model_dir / "model.sig").is_file() else None)
    dec = decision or (
        model_dir / "model.decision.sig" if (model_dir / "model.decision.sig").is_file() else None
    )
    for p in (signature, decision):
        if p is not None and not p.is_file():
            raise GateError("not found", where=str(p), hint="pass the file `mlops-gates sign` wrote")
    version, new = do(reg, name, model_dir, sig, dec, actor=_who(actor))
    state = "registered" if new else "already registered (no change)"
    click.echo(
        f"{name} {version.digest} {state}" + ("" if sig else "; unsigned: it cannot be promoted"), err=True
    )
    click.echo(version.digest)


@click.command()
@click.option("--model", "name", required=True)
@click.option("--digest", required=True, help="sha256:HEX, as register printed it.")
@click.option("--to", "to", required=True, help="The environment to promote into.")
@click.option(
    "--traffic", type=click.IntRange(1, 99), default=None, help="A canary step: this share of traffic."
)
@click.option(
    "--preview", is_flag=True, help="Blue-green: into the idle slot, with no traffic, before the switch."
)
@POLICY
@REGISTRY
@LEDGER
@ACTOR
@OUT
def promote(
    name: str,
    digest: str,
    to: str,
    traffic: int | None,
    preview: bool,
    policy_path: Path,
    registry: str | None,
    ledger: Path | None,
    actor: str | None,
    out: Path | None,
) -> None:
    """Promote a registered version into an environment, if the evidence and the rules allow it."""
    from mlops_gates.errors import Refused
    from mlops_gates.platforms.openlineage import Dataset
    from mlops_gates.promotion.promote import promote as do

    pol = load_policy(policy_path)
    reg = registry_of(registry, ledger, policy_path, pol)
    moved = ([Dataset.model(name, digest)], [Dataset.model(name, digest, to)])
    try:
        outcome = do(
            reg,
            pol,
            name,
            digest,
            to,
            actor=_actor(actor),
            traffic=traffic,
            preview=preview,
            ci_run_url=_run_url(),
        )
    except Refused as exc:
        lineage(f"promote/{name}/{to}", *moved, failed=exc.message)
        raise
    if outcome.entry:
        lineage(f"promote/{name}/{to}", *moved)
    _emit(outcome, out)
    what = f"{traffic}% canary" if traffic else "in the preview slot" if preview else "promoted"
    click.echo(f"{name} {digest} {what} in {to}" if outcome.entry else outcome.checks[0], err=True)


@click.command()
@click.option("--model", "name", required=True)
@click.option("--env", "env", required=True, help="The environment to roll back.")
@POLICY
@REGISTRY
@LEDGER
@ACTOR
@OUT
def rollback(
    name: str,
    env: str,
    policy_path: Path,
    registry: str | None,
    ledger: Path | None,
    actor: str | None,
    out: Path | None,
) -> None:
    """Withdraw a canary, or go back to the previous stable version that still verifies, in one step."""
    from mlops_gates.platforms.openlineage import Dataset
    from mlops_gates.promotion.promote import rollback as do

    pol = load_policy(policy_path)
    reg = registry_of(registry, ledger, policy_path, pol)
    outcome = do(reg, pol, name, env, actor=_actor(actor), ci_run_url=_run_url())
    back = outcome.entry["digest"] if outcome.entry else None
    lineage(f"rollback/{name}/{env}", [Dataset.model(name, back)], [Dataset.model(name, back, env)])
    _emit(outcome, out)


@click.command()
@click.argument("uri", required=False)
@click.argument("dest_arg", metavar="[DEST]", required=False, type=click.Path(path_type=Path))
@click.option("--model", "name", default=None, help="The model's name (or give mlops-gates://MODEL/ENV).")
@click.option("--env", "env", default=None, help="The environment whose version to fetch.")
@click.option(
    "--digest", default=None, help="This version, if the environment serves it (stable, canary, preview)."
)
@click.option("--dest", type=click.Path(path_type=Path), default=None, help="An empty folder for the files.")
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default="gates.yml",
    show_default=True,
    envvar="MLOPS_GATES_POLICY",
    help="The policy file (env MLOPS_GATES_POLICY).",
)
@click.option(
    "--registry",
    default=None,
    envvar="MLOPS_GATES_REGISTRY",
    help="As for promote (env MLOPS_GATES_REGISTRY).",
)
@click.option(
    "--ledger",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="MLOPS_GATES_LEDGER",
    help="As for promote (env MLOPS_GATES_LEDGER).",
)
def fetch(
    uri: str | None,
    dest_arg: Path | None,
    name: str | None,
    env: str | None,
    digest: str | None,
    dest: Path | None,
    policy_path: Path,
    registry: str | None,
    ledger: Path | None,
) -> None:
    """Fetch the version an environment serves into DEST, only if it verifies; else write nothing, exit 1.

    As a storage initializer: mlops-gates fetch mlops-gates://MODEL/ENV[@sha256:HEX] DEST.
    """
    from mlops_gates.promotion.fetch import fetch as do
    from mlops_gates.promotion.fetch import parse_uri

    if uri is not None:
        if name or env or digest or dest or dest_arg is None:
            raise click.UsageError("give either URI DEST, or --model, --env and --dest")
        name, env, digest = parse_uri(uri)
        dest = dest_arg
    if not (name and env and dest):
        raise click.UsageError("give --model, --env and --dest (or URI DEST)")
    pol = load_policy(policy_path)
    got = do(registry_of(registry, ledger, policy_path, pol), pol, name, env, dest, digest=digest)
    for c in got.checks:
        click.echo(f"ok  {c}", err=True)
    click.echo(json.dumps(got.as_json(), indent=2))
    click.echo(f"{name} {got.digest} ({got.role} in {env}) verified and written to {dest}", err=True)
