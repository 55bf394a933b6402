"""One check of a live analysis, as the record, the metrics and the controllers see it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Check:
    name: str
    kind: str  # srm, metric, guardrail
    status: str  # pass, fail, pending, cannot judge
    detail: str
    estimate: float | None = None
    lower: float | None = None
    upper: float | None = None
    limit: float | None = None
    rows: int | None = None
