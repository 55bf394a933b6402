"""The typed policy: frozen dataclasses that every other part reads, never the raw YAML."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_gates.errors import GateError

Problem = tuple[str, str, "str | None"]  # (where, what is wrong, how to fix it)


@dataclass(frozen=True)
class ModelSpec:
    path: Path
    format: str = "auto"
    trust: str | None = None  # "pickle": allow pickle/joblib files (never on a fork's pull request)
    model_class: str | None = None  # "package.module:Class", for weights-only formats
    init: dict[str, Any] = field(default_factory=dict, hash=False)
    features: tuple[str, ...] | None = None
    device: str = "cpu"
    batch_size: int = 4096
    output: str = "auto"  # auto | probabilities | logits (torch classifiers)


@dataclass(frozen=True)
class Signer:
    """Who must have signed: a public key; a Sigstore identity (exact or regular expression) with its issuer; or
    a certificate from a private CA, perhaps naming an identity."""

    key: Path | None = None
    identity: str | None = None
    identity_regexp: str | None = None
    issuer: str | None = None
    trust_root: Path | None = None
    repository: str | None = None  # GitHub Actions identities: OWNER/REPO
    ref: str | None = None  # GitHub Actions identities: refs/...
    ca: Path | None = None  # a private CA's certificates (PEM): the signing certificate must chain to them


@dataclass(frozen=True)
class FeastSource:
    """Features from a Feast repository for an entity table (mlops_gates.data.feature_store fetches them)."""

    repo: Path
    features: str | tuple[str, ...]  # a feature service, or VIEW:FEATURE references
    entities: Path
    env: Path | None = None


@dataclass(frozen=True)
class Dataset:
    path: Path  # for a Feast source: where its rows will be written, until they are
    format: str  # parquet, csv, jsonl; "feast" until fetched
    feast: FeastSource | None = None  # where the rows come from (fetched into `path` once format is parquet)
    origin: dict[str, Any] | None = field(default=None, hash=False, compare=False)  # what the rows came from


@dataclass(frozen=True)
class ModelColumns:
    prediction: str | None
    score: tuple[str, ...]  # empty: no scores; one column (binary) or one per class (multiclass)


@dataclass(frozen=True)
class Columns:
    label: str
    candidate: ModelColumns | None  # None until the candidate model has predicted (models.candidate)
    baseline: ModelColumns | None
    sensitive: tuple[str, ...]
    slices: tuple[str, ...]
    weight: str | None
    features: tuple[str, ...] | None


@dataclass(frozen=True)
class Settings:
    confidence: float = 0.95
    replicates: int = 2000
    seed: int = 0
    decision_mode: str = "interval"
    correction: str = "none"
    score_bins: int = 200
    threshold: float = 0.5
    min_group_size: int = 30
    min_group_positives: int = 5
    strata: tuple[str, ...] = ()  # columns the sample was drawn stratified by: the bootstrap resamples within


@dataclass(frozen=True)
class OnOutcome:
    error: str = "reject"
    inconclusive: str = "hold"
    missing_baseline: str = "hold"
    insufficient_group: str = "hold"
    missing_group: str = "hold"


@dataclass(frozen=True)
class Threshold:
    metric: str
    op: str
    value: float
    severity: str


@dataclass(frozen=True)
class Margin:
    metric: str
    kind: str  # "absolute" or "relative"
    value: float
    severity: str


@dataclass(frozen=True)
class GateSpec:
    type: str
    name: str
    severity: str
    config: dict[str, Any] = field(hash=False, compare=False)
    thresholds: tuple[Threshold, ...] = ()
    margins: tuple[Margin, ...] = ()


@dataclass(frozen=True)
class Role:
    """A named role and who holds it: user names, or "@org/team" / "@group/subgroup" the platform confirms."""

    name: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class Environment:
    """One step of promotion: who may move a model into it, and whose signatures it trusts."""

    name: str
    signers: tuple[Signer, ...]
    approvers: tuple[str, ...] | None = None  # None: anyone who can run the promotion
    distinct_from_author: bool = False
    min_time_in_previous: float = 0.0  # seconds
    canary: tuple[int, ...] = ()
    blue_green: bool = False  # a preview slot first, then the switch; a rollback switches back
    # action ("promote", "rollback") -> the roles, any one of which may act; absent: `approvers` decides
    roles: dict[str, tuple[Role, ...]] = field(default_factory=dict, hash=False, compare=False)


# the request log's columns for the live analysis, by role (promotion.analysis.columns renames them)
LIVE_COLUMNS = {
    "request_id": "request_id",
    "version": "version",
    "prediction": "prediction",
    "score": "score",
    "label": "label",
    "latency": "latency_ms",
    "error": "error",
    "split": "split",
}


@dataclass(frozen=True)
class Promotion:
    environments: tuple[Environment, ...]
    registry: str | None = None
    max_decision_age: float = 30 * 86400.0  # seconds
    ledger: Path | None = None  # where the audit log lives (default: in the registry folder)
    watch: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)  # rollback triggers
    analysis: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)  # live canary analysis
    alerts: dict[str, Any] = field(
        default_factory=dict, hash=False, compare=False
    )  # where triggers are announced
    keep_versions: float | None = None  # retention.versions, seconds
    encrypted: bool = False  # versions encrypted at rest (promotion/crypt.py)

    def env(self, name: str) -> tuple[int, Environment]:
        for i, e in enumerate(self.environments):
            if e.name == name:
                return i, e
        names = ", ".join(e.name for e in self.environments)
        raise GateError(f"no environment named {name!r}", hint=f"the policy's environments are: {names}")


@dataclass(frozen=True)
class WaiverRule:
    role: Role
    gates: tuple[str, ...]  # gate names; "*": any
    max_age: float  # seconds


@dataclass(frozen=True)
class Waivers:
    """Where waivers are kept, whose signature makes one valid, and who may waive what."""

    dir: Path
    signers: tuple[Signer, ...]
    allow: tuple[WaiverRule, ...]


@dataclass(frozen=True)
class Residency:
    """What may leave the runner (publish: all, aggregate, verdict) and where signatures may go."""

    publish: str = "all"
    min_group_size: int | None = None
    signing: str = "any"  # "private": no public-good Sigstore


@dataclass(frozen=True)
class Policy:
    path: Path
    digest: str
    task: str
    positive_label: Any
    classes: tuple[Any, ...]
    eval_data: Dataset
    reference: Dataset | None
    training: Dataset | None
    columns: Columns
    settings: Settings
    on: OnOutcome
    gates: tuple[GateSpec, ...]
    models: dict[str, ModelSpec] = field(default_factory=dict, hash=False, compare=False)
    promotion: Promotion | None = None
    waivers: Waivers | None = None
    residency: Residency | None = None
