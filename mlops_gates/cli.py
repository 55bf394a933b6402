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
from mlops_gates.models import FORMATS

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


engine_option = click.option(
    "--engine",
    type=click.Choice(["auto", "arrow", "duckdb", "spark"]),
    default="auto",
    show_default=True,
    envvar="MLOPS_GATES_ENGINE",
    help="What computes the statistics: auto (DuckDB for a classification policy over Parquet, else Arrow), "
    "arrow (streaming here), duckdb (in process, multi-threaded) or spark (pyspark's session).",
)


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
@click.option(
    "--stats",
    "stats_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Decide from shards' statistics (`stats compute`) instead of reading the data (repeatable).",
)
@engine_option
def evaluate(
    policy_path: Path,
    out_dir: Path,
    models: tuple[str, ...],
    do_publish: bool,
    stats_files: tuple[Path, ...],
    engine: str,
    **opts: object,
) -> None:
    """Evaluate the candidate against the policy and decide PROMOTE, HOLD or REJECT."""
    from mlops_gates.evaluate import run

    paths = {}
    for item in models:
        role, sep, path = item.partition("=")
        if not (sep and role and path):
            raise click.BadParameter(f"'{item}' is not ROLE=PATH", param_hint="--model")
        paths[role] = Path(path)
    outcome = run(policy_path, out_dir, model_paths=paths, stats_paths=list(stats_files), engine=engine)
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


@cli.command()
@click.option("--model", "model_path", type=click.Path(path_type=Path), help="The model file or folder.")
@click.option(
    "--data",
    "data_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Features: Parquet, CSV or JSONL.",
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default="predictions.parquet",
    show_default=True,
)
@click.option(
    "--task", type=click.Choice(["binary", "multiclass", "regression"]), default="binary", show_default=True
)
@click.option(
    "--positive-label",
    default="1",
    show_default=True,
    help="Binary: the positive class, as the model names it.",
)
@click.option("--classes", default=None, help="Multiclass: the classes, comma-separated, in order.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="auto",
    show_default=True,
)
@click.option(
    "--trust", type=click.Choice(["pickle"]), default=None, help="Allow pickle/joblib (never on a fork's PR)."
)
@click.option(
    "--class", "model_class", default=None, metavar="MODULE:CLASS", help="The class weights load into."
)
@click.option("--init", "init_json", default="{}", metavar="JSON", help="Keyword arguments for --class.")
@click.option("--features", default=None, help="Feature columns, comma-separated, in the model's order.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N (PyTorch).")
@click.option("--batch-size", type=click.IntRange(min=1), default=4096, show_default=True)
@click.option("--job", type=click.Path(dir_okay=False, path_type=Path), hidden=True)
def predict(
    model_path: Path | None,
    data_path: Path | None,
    out_path: Path,
    task: str,
    positive_label: str,
    classes: str | None,
    fmt: str,
    trust: str | None,
    model_class: str | None,
    init_json: str,
    features: str | None,
    device: str,
    batch_size: int,
    job: Path | None,
) -> None:
    """Score a model on a table of features and write its scores (score, score:<class> or prediction) to Parquet."""
    from mlops_gates import predict as P
    from mlops_gates.models.base import ModelSpec, Task
    from mlops_gates.models.pin import pin, unpin
    from mlops_gates.policy import Dataset, _dataset

    if job is not None:
        P.run_job(job)
        return
    if model_path is None or data_path is None:
        raise click.UsageError("predict needs --model and --data")
    try:
        init = json.loads(init_json)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--init") from None
    kind = Task(task, positive_label, tuple(c.strip() for c in classes.split(",")) if classes else ())
    if task == "multiclass" and not kind.classes:
        raise click.UsageError("a multiclass task needs --classes")
    pinned = pin(model_path)
    try:
        spec = ModelSpec(
            pinned.path,
            fmt,
            trust,
            model_class,
            init,
            tuple(features.split(",")) if features else None,
            device,
            batch_size,
        )
        data: Dataset = _dataset({"path": str(data_path)}, Path.cwd())
        m = P.predict(spec, kind, data, out_path, expected=pinned.files)
    finally:
        unpin(pinned)
    click.echo(
        f"{m['rows']:,} rows scored by {model_path} ({pinned.digest}) -> {out_path}; "
        f"p50 {m['latency_p50_ms']:.2f} ms, p95 {m['latency_p95_ms']:.2f} ms per batch of {batch_size}"
    )


@cli.command()
@click.argument("model_path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def scan(model_path: Path, as_json: bool) -> None:
    """Identify every file of a model and walk its pickles without loading them. Exit 0 only when all is safe."""
    from dataclasses import asdict

    from mlops_gates.models.scan import scan as scan_model

    if not model_path.exists():
        raise GateError("not found", where=str(model_path), hint="pass a model file or folder")
    reports = scan_model(model_path)
    if as_json:
        click.echo(json.dumps([asdict(r) for r in reports], indent=2))
    else:
        for r in reports:
            verdict = "safe" if r.safe else "UNSAFE" if r.safe is False else "unknown"
            extra = f": imports {', '.join(r.unsafe)}" if r.unsafe else (f": {r.note}" if r.note else "")
            click.echo(f"{verdict:<8} {r.kind:<13} {r.path}{extra}")
    sys.exit(ExitCode.PROMOTE if all(r.safe for r in reports) else ExitCode.BLOCKED)


ignore_option = click.option(
    "--ignore-path", "ignore", multiple=True, help="A path inside the model folder to leave out (repeatable)."
)
trust_config_option = click.option(
    "--trust-config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A Sigstore client trust configuration, for a private deployment (default: public-good Sigstore).",
)


@cli.command("sign")
@click.argument("model_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--signature",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Default: MODEL_DIR/model.sig.",
)
@click.option(
    "--key",
    "key_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="ECDSA P-256/P-384 private key, PEM.",
)
@click.option(
    "--key-env",
    default=None,
    metavar="VAR",
    help="Environment variable holding the PEM private key (never printed).",
)
@click.option(
    "--decision",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also sign this decision.json about the model (written to model.decision.sig beside the signature).",
)
@click.option(
    "--identity-token",
    default=None,
    help="Keyless: an OIDC token (default: SIGSTORE_ID_TOKEN, or GitHub Actions' id-token endpoint).",
)
@trust_config_option
@ignore_option
def sign_cmd(
    model_dir: Path,
    signature: Path | None,
    key_path: Path | None,
    key_env: str | None,
    decision: Path | None,
    identity_token: str | None,
    trust_config: Path | None,
    ignore: tuple[str, ...],
) -> None:
    """Sign MODEL_DIR in the OpenSSF model-signing v1.0 format, and optionally the gate's decision about it.

    With --key or --key-env it signs with that key; otherwise keyless, with Sigstore and the CI identity."""
    from mlops_gates.signing.sign import BundleSigner, sign

    signer: BundleSigner
    if key_path or key_env:
        from mlops_gates.signing.envelope import PrivateKey

        signer = PrivateKey.load(key_path) if key_path else PrivateKey.load(env=key_env)
    else:
        from mlops_gates.signing.keyless import KeylessSigner, find_identity_token

        signer = KeylessSigner(find_identity_token(identity_token), trust_config)
    s = sign(model_dir, signer, signature=signature, decision=decision, ignore=ignore)
    click.echo(
        f"signed {s.files} files of {model_dir} (model-signing subject sha256:{s.subject_digest}) -> {s.signature}"
    )
    if s.decision:
        click.echo(f"signed the decision about it -> {s.decision}")
    click.echo(
        f"digest sha256:{s.root_digest}"
    )  # the root digest: what register and promote call the version


@cli.command("verify")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--signature", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option(
    "--key",
    "key_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The signer's public key, PEM.",
)
@click.option("--identity", default=None, help="The signer's exact identity (certificate SAN).")
@click.option(
    "--identity-regexp", default=None, help="A regular expression the signer's identity must fully match."
)
@click.option("--issuer", default=None, help="The identity's OIDC issuer.")
@click.option(
    "--trust-root",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Sigstore trusted root JSON (default: public-good Sigstore's, embedded; no network).",
)
@trust_config_option
@click.option(
    "--repository", default=None, help="GitHub Actions identities: the OWNER/REPO that must have signed."
)
@click.option(
    "--ref", default=None, help="GitHub Actions identities: the ref (refs/tags/v1) that must have signed."
)
@click.option(
    "--decision",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The decision attestation (default: model.decision.sig beside the signature, when present).",
)
@ignore_option
def verify_cmd(
    path: Path,
    signature: Path,
    key_path: Path | None,
    identity: str | None,
    identity_regexp: str | None,
    issuer: str | None,
    trust_root: Path | None,
    trust_config: Path | None,
    repository: str | None,
    ref: str | None,
    decision: Path | None,
    ignore: tuple[str, ...],
) -> None:
    """Verify a model's signature (and its decision attestation). Exit 0 only when every check holds.

    PATH is the model folder, a signed file, or sha256:HEX for an artifact known by its digest.
    """
    from mlops_gates.signing.envelope import VerificationFailed
    from mlops_gates.signing.verify import Signer, verify

    if bool(key_path) == bool(identity or identity_regexp):
        raise click.UsageError("pass either --key, or --identity/--identity-regexp with --issuer")
    try:
        v = verify(
            path,
            signature,
            Signer(key_path, identity, identity_regexp, issuer, trust_root or trust_config, repository, ref),
            ignore=ignore,
            decision=decision,
        )
    except VerificationFailed as exc:
        click.echo(f"FAILED {exc.render()}", err=True)
        sys.exit(ExitCode.BLOCKED)
    for check in v.checks:
        click.echo(f"ok  {check}")
    click.echo(
        f"verified {path}"
        + (f"; the gate decided {v.decision['predicate']['decision']}" if v.decision else "")
    )


@cli.group()
def stats() -> None:
    """Sufficient statistics per shard, for evaluation sets split across CI jobs."""


@stats.command("compute")
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default="gates.yml",
    show_default=True,
)
@click.option(
    "--data",
    "data_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="This shard's evaluation data (default: the policy's data.eval).",
)
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), required=True)
@engine_option
def stats_compute(policy_path: Path, data_path: Path | None, out_path: Path, engine: str) -> None:
    """Read one shard once and write its statistics; `evaluate --stats` adds the shards up and decides."""
    from mlops_gates.evaluate import compute
    from mlops_gates.stats.state import to_state, write

    pol, staged, s = compute(policy_path, data_path, engine)
    staged.cleanup()
    write(to_state(s, pol, data_path or pol.eval_data.path), out_path)
    click.echo(f"{s.rows:,} rows of {data_path or pol.eval_data.path} -> {out_path} ({len(s.cells):,} cells)")


@cli.group()
def deepchecks() -> None:
    """deepchecks' suites as a gate, in their own environment."""


@deepchecks.command("setup")
@click.option(
    "--path",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to create it (default: MLOPS_GATES_DEEPCHECKS_ENV or ~/.cache/mlops-gates/deepchecks-VERSION).",
)
@click.option("--force", is_flag=True, help="Recreate it even if it looks right.")
def deepchecks_setup(path: Path | None, force: bool) -> None:
    """Create the virtual environment deepchecks runs in, with pinned versions that work together."""
    from mlops_gates import deepchecks_env

    deepchecks_env.setup(path or deepchecks_env.default_path(), force=force, echo=click.echo)


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


from mlops_gates.promotion import cli as _promotion  # noqa: E402  (commands of their own module)

for _command in (
    _promotion.register,
    _promotion.promote,
    _promotion.rollback,
    _promotion.watch,
    _promotion.audit,
):
    cli.add_command(_command)


def main() -> None:
    """The command line, with stdout and stderr guarded: a value from data cannot start a CI workflow command
    or a GitLab log section on a line of its own."""
    from mlops_gates.escape import GuardedStream

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
        click.echo(f"{exc.label} {exc.render()}", err=True)
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
