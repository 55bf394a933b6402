"""The audit commands: verify the registry (and what its retention requires), show the history, trace a
model's lineage, export the log for a SIEM."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from mlops_gates.cli.promotion import LEDGER, POLICY, REGISTRY, load_policy, registry_of
from mlops_gates.errors import ExitCode, GateError


@click.group()
def audit() -> None:
    """The registry's audit log: check it, or show its history."""


@audit.command("verify")
@REGISTRY
@LEDGER
@POLICY
def audit_verify(registry: str | None, ledger: Path | None, policy_path: Path) -> None:
    """Check the chain, its head, every pointer against the log, and every version's files. Exit 1 if broken."""
    from mlops_gates.promotion.audit import now_utc
    from mlops_gates.promotion.export import retention
    from mlops_gates.promotion.promote import verify_registry

    pol = load_policy(policy_path) if policy_path.is_file() else None
    reg = registry_of(registry, ledger, policy_path, pol)
    n, problems = verify_registry(reg)
    notes: list[str] = []
    if not problems:
        keep = pol.promotion.keep_versions if pol and pol.promotion else None
        problems, notes = retention(reg, reg.ledger.entries(), keep, now_utc())
    for p in problems:
        click.echo(f"BROKEN {p}", err=True)
    for note in notes:
        click.echo(f"note {note}", err=True)
    if problems:
        sys.exit(ExitCode.BLOCKED)
    click.echo(f"ok  {n} entries, chain and head intact; pointers match the log; every version's files match")


@audit.command("export")
@REGISTRY
@LEDGER
@POLICY
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["ecs"]),
    default="ecs",
    show_default=True,
    help="The SIEM schema: Elastic Common Schema 9.",
)
@click.option(
    "--from",
    "start",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="The first entry to export.",
)
@click.option(
    "--after",
    default=None,
    metavar="HASH",
    help="The hash of the last entry the receiver holds: refused unless entry FROM-1 has it.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write here (default: stdout).",
)
def audit_export(
    registry: str | None,
    ledger: Path | None,
    policy_path: Path,
    fmt: str,
    start: int,
    after: str | None,
    out: Path | None,
) -> None:
    """Export the audit log as JSON Lines for a SIEM, with the chain proofs, from an entry on."""
    from mlops_gates.promotion.export import export
    from mlops_gates.promotion.promote import state

    entries, _ = state(registry_of(registry, ledger, policy_path))
    lines = [json.dumps(doc, sort_keys=True, ensure_ascii=False) for doc in export(entries, start, after)]
    text = "".join(line + "\n" for line in lines)
    if out is not None:
        out.write_text(text)
    else:
        click.echo(text, nl=False)
    click.echo(f"exported {len(lines)} entries ({fmt}) from entry {start}", err=True)


@audit.command("show")
@REGISTRY
@LEDGER
@POLICY
@click.option("--model", "name", default=None, help="Only this model.")
@click.option("--json", "as_json", is_flag=True, help="The entries as JSON lines.")
def audit_show(
    registry: str | None, ledger: Path | None, policy_path: Path, name: str | None, as_json: bool
) -> None:
    """Print the history, oldest first."""
    from mlops_gates.promotion.promote import state

    reg = registry_of(registry, ledger, policy_path)
    entries, _ = state(reg)
    for e in entries:
        if name and e["model"] != name:
            continue
        if as_json:
            click.echo(json.dumps(e, sort_keys=True))
            continue
        where = f"{e['from'] or '-'} -> {e['to']}" if e["to"] else ""
        traffic = f" {e['traffic']}%" if e["traffic"] is not None else ""
        click.echo(
            f"{e['seq']:>4} {e['time']} {e['action']:<8} {e['outcome']:<7} {e['model']} "
            f"{(e['digest'] or '-')[:19]} {where}{traffic} by {e['actor'] or '?'}: {e['reason']}"
        )


@audit.command("lineage")
@click.argument("name", metavar="MODEL")
@REGISTRY
@LEDGER
@POLICY
@click.option("--json", "as_json", is_flag=True, help="One JSON object per version.")
def audit_lineage(
    registry: str | None, ledger: Path | None, policy_path: Path, name: str, as_json: bool
) -> None:
    """Print MODEL's lineage: training (code, data), the gate's decision, and every promotion, per version."""
    from mlops_gates.promotion.lineage import lineage, render

    records = lineage(registry_of(registry, ledger, policy_path), name)
    if not records:
        raise GateError(
            f"the registry has no version of {name}", hint="check the name: mlops-gates audit show"
        )
    if as_json:
        for r in records:
            click.echo(json.dumps(r, sort_keys=True))
    else:
        click.echo(render(records))
