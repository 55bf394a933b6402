"""The gate interface: statuses, results with intervals (with a JSON round trip), and the context a gate sees."""

from __future__ import annotations

import enum
import math
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlops_gates.policy import GateSpec, Policy
from mlops_gates.stats.collect import EvalStats
from mlops_gates.stats.compute import Bootstrap, resample


class Status(str, enum.Enum):
    PASS = "PASS"
    WARN = "WARN"
    INCONCLUSIVE = "INCONCLUSIVE"
    FAIL = "FAIL"
    ERROR = "ERROR"
    SKIP = "SKIP"
    WAIVED = "WAIVED"  # failed, and a valid waiver excepts it (mlops_gates.gates.waivers)


# How bad each status is when a gate summarises its metrics.
RANK = {
    Status.SKIP: 0,
    Status.PASS: 1,
    Status.WARN: 2,
    Status.WAIVED: 2,
    Status.INCONCLUSIVE: 3,
    Status.ERROR: 4,
    Status.FAIL: 5,
}


@dataclass(frozen=True)
class MetricResult:
    metric: str
    scope: str  # "overall", "sex=Female", "sex (between groups)", ...
    status: Status
    value: float | None
    ci: tuple[float, float] | None
    n: int
    comparator: str | None = None
    threshold: float | None = None
    baseline: float | None = None  # the baseline's value, for comparisons
    p_value: float | None = None  # the chance of a result this good were the metric on the bad side (PASS)
    adjusted_p: float | None = None  # the good side's p-value after the correction (FAIL needs it small)
    severity: str = "fail"
    note: str | None = None
    to_decide: dict[str, Any] | None = (
        None  # INCONCLUSIVE: the effect these rows detect, the rows that decide
    )

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status.value
        d["ci"] = list(self.ci) if self.ci else None
        return {k: _clean(v) for k, v in d.items()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MetricResult:
        ci = d.get("ci")
        return cls(**{**d, "status": Status(d["status"]), "ci": (ci[0], ci[1]) if ci else None})


@dataclass(frozen=True)
class GateResult:
    name: str
    type: str
    status: Status
    reason: str
    metrics: tuple[MetricResult, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    correction: str = "none"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "status": self.status.value,
            "reason": self.reason,
            "correction": self.correction,
            "metrics": [m.to_json() for m in self.metrics],
            "details": _clean(self.details),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> GateResult:
        """Read back a gate from a decision record (publishing, promotion and audits start from the record)."""
        metrics = tuple(MetricResult.from_json(m) for m in d["metrics"])
        return cls(
            d["name"], d["type"], Status(d["status"]), d["reason"], metrics, d["details"], d["correction"]
        )


def _clean(v: Any) -> Any:
    """JSON-safe: NaN -> None (undefined), numpy scalars -> Python, floats rounded to 12 significant digits."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return None if math.isnan(f) or math.isinf(f) else float(f"{f:.12g}")
    return v


@dataclass
class Context:
    """What every gate sees: the policy, the statistics, and shared bootstrap resamples."""

    policy: Policy
    stats: EvalStats
    pinned: dict[str, Any] = field(default_factory=dict)  # role -> Pinned, when the policy names models
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> what its predict step measured
    out_dir: Path | None = None  # where gates may leave files beside the record (deepchecks' HTML)
    _cache: dict[tuple[Any, ...], Bootstrap] = field(default_factory=dict)
    _values: dict[tuple[Any, ...], Any] = field(default_factory=dict)

    def once(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        """Values computed once per run: both models' paired metrics come from one pass over the replicates
        (a large table is drawn again for every pass)."""
        if key not in self._values:
            self._values[key] = compute()
        return self._values[key]

    def resampled(self, names: tuple[str, ...], unit: str = "row", groups: bool = True) -> Bootstrap:
        """The shared bootstrap of the table on `names`: with the group key (per-group metrics) or without it
        (a metric of the whole set, whose table would only multiply its cells by the groups)."""
        key = (names, unit) if groups else (names, unit, "unstratified")
        if key not in self._cache:
            s = self.policy.settings
            seed = (s.seed * 1_000_003 + zlib.crc32(repr(key).encode())) % (2**32)
            design = tuple(self.stats.group_columns.index(c) for c in s.strata)
            self._cache[key] = resample(self.stats, names, s.replicates, seed, unit, groups, design)
        return self._cache[key]


# What an `on:` action in the policy makes of a check it applies to.
ACTION = {
    "hold": Status.INCONCLUSIVE,
    "fail": Status.FAIL,
    "reject": Status.FAIL,
    "warn": Status.WARN,
    "skip": Status.SKIP,
}


def insufficient_status(policy: Policy) -> Status:
    """What the policy does with a group or slice too small to judge."""
    return ACTION[policy.on.insufficient_group]


GateFn = Callable[[GateSpec, Context], GateResult]
