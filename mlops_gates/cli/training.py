"""attest-training: sign how a model was trained (SLSA provenance), for the decision and verify to link."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mlops_gates.cli.signing import key_options, signer_of


@click.command("attest-training")
@click.argument("model_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option(
    "--data",
    "data",
    multiple=True,
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="Training data (a file or folder; repeatable): its digest goes into the attestation.",
)
@click.option(
    "--config",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The training configuration file.",
)
@click.option(
    "--lock",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The environment's lock or requirements file (default: the digest of this Python's `pip freeze`).",
)
@click.option(
    "--repository", default=None, help="The code's repository (default: the CI run's, or git's origin)."
)
@click.option("--commit", default=None, help="The code's commit (default: the CI run's, or git's HEAD).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the signed attestation (default: MODEL_DIR.training.sig beside the folder).",
)
@key_options
def attest_training_cmd(
    model_dir: Path,
    data: tuple[Path, ...],
    config: Path | None,
    lock: Path | None,
    repository: str | None,
    commit: str | None,
    out: Path | None,
    **keys: Any,
) -> None:
    """Sign how MODEL_DIR was trained (SLSA provenance v1): code, data, configuration and environment.

    Give the file to `evaluate --provenance` (the decision links it) and `verify --require-provenance`."""
    import datetime as dt

    from mlops_gates.platforms import ci
    from mlops_gates.signing.provenance import attest_training, code_origin, environment

    repo, sha = code_origin(repository, commit)
    signer = signer_of(keys)
    out = out or model_dir.parent / f"{model_dir.name}.training.sig"
    st = attest_training(
        model_dir,
        signer,
        out,
        repository=repo,
        commit=sha,
        data=list(data),
        config=config,
        env=environment(lock),
        run_url=(ci.context() or {}).get("run_url"),
        now=dt.datetime.now(dt.timezone.utc),
    )
    root = f"sha256:{st['subject'][0]['digest']['sha256']}"
    click.echo(f"attested the training of {model_dir} ({root}) -> {out}")
    from mlops_gates.cli.options import lineage
    from mlops_gates.platforms.openlineage import Dataset

    deps = st["predicate"]["buildDefinition"]["resolvedDependencies"]
    data_in = [
        Dataset.file(d["name"], "sha256:" + d["digest"]["sha256"])
        for d in deps
        if (d.get("annotations") or {}).get("role") == "training-data"
    ]
    lineage(f"train/{model_dir.name}", data_in, [Dataset.model(model_dir.name, root)], code=(repo, sha))
