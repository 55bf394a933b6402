"""The waiver commands: create (sign an exception to one failing check), verify one, list them."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import click

from mlops_gates.cli.options import policy_option
from mlops_gates.cli.signing import key_options, signer_of
from mlops_gates.errors import ExitCode

DECISION = click.option(
    "--decision",
    "decision_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The decision.json of the evaluation whose check fails (it names the model and the change's author).",
)


@click.group("waiver")
def waiver() -> None:
    """Signed, expiring exceptions to one failing check of one model version (docs/enterprise.md)."""


@waiver.command("create")
@policy_option
@DECISION
@click.option(
    "--check",
    "check_text",
    required=True,
    metavar="GATE[/METRIC[/SCOPE]]",
    help="The failing check: enough of GATE/METRIC/SCOPE to name one (the error lists them).",
)
@click.option(
    "--reason", required=True, help="Why the exception is acceptable (shown wherever it is applied)."
)
@click.option("--expires", default="7d", show_default=True, metavar="DURATION", help="90m, 12h, 7d, ...")
@click.option("--actor", default=None, help="The approver, outside CI (in CI the platform says).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write it (default: the policy's waivers.dir).",
)
@key_options
def create_cmd(
    policy_path: Path,
    decision_path: Path,
    check_text: str,
    reason: str,
    expires: str,
    actor: str | None,
    out: Path | None,
    **keys: Any,
) -> None:
    """Sign a waiver of one failing check of the decision's candidate, as an approver holding a role the
    policy lets waive that gate (never the change's author)."""
    from mlops_gates.cli.promotion import _actor, load_policy
    from mlops_gates.gates import waivers
    from mlops_gates.schemas import read_record

    if not re.fullmatch(r"[0-9]+[smhd]", expires):
        raise click.BadParameter("a duration such as 90m, 12h or 7d", param_hint="--expires")
    from mlops_gates.policy import seconds

    pol = load_policy(policy_path)
    cfg = waivers.config(pol)
    rec = read_record(decision_path)
    approver = _actor(actor)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    signer = signer_of(keys, private=pol.residency is not None and pol.residency.signing == "private")
    model = ((rec["inputs"].get("models") or {}).get("candidate") or {}).get("digest") or ""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", check_text)[:60]
    out = out or cfg.dir / f"{model.removeprefix('sha256:')[:12]}-{name}-{now:%Y%m%dT%H%M%S}.json"
    st = waivers.create(
        pol,
        rec,
        str(decision_path),
        check_text,
        reason=reason,
        ttl=seconds(expires),
        approver=approver,
        signer=signer,
        out=out,
        now=now,
    )
    p = st["predicate"]
    label = waivers.Check(**p["check"]).label
    click.echo(f"waived {label} of {model} by {approver} ({p['role']}) until {p['expires']} -> {out}")


@waiver.command("verify")
@click.argument("waiver_file", type=click.Path(dir_okay=False, path_type=Path))
@policy_option
@DECISION
def verify_cmd(waiver_file: Path, policy_path: Path, decision_path: Path) -> None:
    """Would WAIVER_FILE be applied to this decision's evaluation now? Exit 0 if so, 1 (and why) if not."""
    applied, ignored = _judge(policy_path, decision_path, [waiver_file])
    for line in applied:
        click.echo(f"valid: {line}")
    for line in ignored:
        click.echo(f"not valid: {line}", err=True)
    raise SystemExit(ExitCode.PROMOTE if applied else ExitCode.BLOCKED)


@waiver.command("list")
@policy_option
@DECISION
def list_cmd(policy_path: Path, decision_path: Path) -> None:
    """Every waiver in the policy's waivers.dir, and whether it applies to this decision's evaluation now."""
    applied, ignored = _judge(policy_path, decision_path, None)
    for line in applied:
        click.echo(f"applies  {line}")
    for line in ignored:
        click.echo(f"ignored  {line}")
    if not applied and not ignored:
        click.echo("no waivers")


def _judge(policy_path: Path, decision_path: Path, files: list[Path] | None) -> tuple[list[str], list[str]]:
    """The waivers (these files, or the policy's folder) applied to the decision's results as evaluate would."""
    from mlops_gates.cli.promotion import load_policy
    from mlops_gates.gates import waivers
    from mlops_gates.gates.base import GateResult
    from mlops_gates.report.format import waivers as lines
    from mlops_gates.schemas import read_record

    pol = load_policy(policy_path)
    waivers.config(pol)
    rec = read_record(decision_path)
    results = [GateResult.from_json(g) for g in rec["gates"]]
    model = ((rec["inputs"].get("models") or {}).get("candidate") or {}).get("digest")
    author = (rec.get("ci") or {}).get("author")
    _, report = waivers.apply(pol, results, model, author, dt.datetime.now(dt.timezone.utc), files=files)
    return lines({"waivers": report})
