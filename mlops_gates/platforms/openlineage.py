"""OpenLineage run events for lineage catalogues (Marquez, DataHub, ...): the training attestation, each
evaluation and each promotion or rollback, sent by the official client to wherever it is configured
(`OPENLINEAGE_URL` for HTTP, or `OPENLINEAGE_CONFIG` naming a YAML file with a file, HTTP or Kafka transport).
Off unless one of those is set. A catalogue that cannot be reached is reported, never a failed command: the
lineage follows the decision, it does not make it."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_gates._version import __version__

PRODUCER = f"https://github.com/mlops-gates/mlops-gates/tree/v{__version__}"
NAMESPACE = "mlops-gates"  # jobs and model datasets; OPENLINEAGE_NAMESPACE overrides


@dataclass(frozen=True)
class Dataset:
    namespace: str
    name: str
    version: str | None = None  # a digest: catalogues tell versions of the same dataset apart by it

    @classmethod
    def file(cls, path: str | Path, digest: str | None) -> Dataset:
        """A local file, named as OpenLineage names them (namespace file, the absolute path)."""
        return cls("file", str(Path(path).resolve()), digest)

    @classmethod
    def model(cls, name: str, digest: str | None, environment: str | None = None) -> Dataset:
        return cls(namespace(), f"{name}/{environment}" if environment else name, digest)


def namespace() -> str:
    return os.environ.get("OPENLINEAGE_NAMESPACE") or NAMESPACE


def enabled() -> bool:
    on = bool(os.environ.get("OPENLINEAGE_URL") or os.environ.get("OPENLINEAGE_CONFIG"))
    return on and os.environ.get("OPENLINEAGE_DISABLED", "").strip().lower() != "true"


def emit(
    job: str,
    inputs: list[Dataset],
    outputs: list[Dataset],
    *,
    failed: str | None = None,
    code: tuple[str, str] | None = None,
) -> str | None:
    """One COMPLETE (or, with `failed`, FAIL) run event. Returns why it could not be sent, or None."""
    if not enabled():
        return None
    try:
        from openlineage.client import OpenLineageClient
        from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
        from openlineage.client.facet_v2 import (
            dataset_version_dataset,
            error_message_run,
            source_code_location_job,
        )
        from openlineage.client.uuid import generate_new_uuid
    except ImportError:
        return "OpenLineage is configured but its client is not installed: pip install 'mlops-gates[lineage]'"

    def facets(d: Dataset) -> dict[str, Any]:
        return (
            {"version": dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=d.version)}
            if d.version
            else {}
        )

    job_facets: dict[str, Any] = {}
    if code is not None:
        repo, commit = code
        job_facets["sourceCodeLocation"] = source_code_location_job.SourceCodeLocationJobFacet(
            type="git", url=repo, repoUrl=repo, version=commit
        )
    run_facets: dict[str, Any] = {}
    if failed is not None:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=failed, programmingLanguage="python"
        )
    event = RunEvent(
        eventType=RunState.FAIL if failed is not None else RunState.COMPLETE,
        eventTime=dt.datetime.now(dt.timezone.utc).isoformat(),
        run=Run(runId=str(generate_new_uuid()), facets=run_facets),
        job=Job(namespace=namespace(), name=job, facets=job_facets),
        producer=PRODUCER,
        inputs=[InputDataset(namespace=d.namespace, name=d.name, facets=facets(d)) for d in inputs],
        outputs=[OutputDataset(namespace=d.namespace, name=d.name, facets=facets(d)) for d in outputs],
    )
    try:
        client = OpenLineageClient()
        client.emit(event)
        client.close(timeout=10)
    except Exception as exc:  # any transport's failure: reported, never the command's
        return f"the OpenLineage event for {job} was not delivered ({type(exc).__name__}: {str(exc)[:200]})"
    return None
