"""What `serve` tells Prometheus: the verdict of every canary/stable pair (as a state set), every check's
estimate, bounds and limit, the rows behind them, and how often each verdict was answered. Labelled by model,
environment and version, on a registry of its own (nothing else of the process leaks in)."""

from __future__ import annotations

import math
import threading
from typing import Any

VERDICTS = ("PROMOTE", "CONTINUE", "ROLLBACK", "HOLD")


class Exposition:
    def __init__(self, model: str, environment: str) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.base = {"model": model, "environment": environment}
        self.registry = CollectorRegistry()
        pair = ["model", "environment", "canary", "stable"]
        self.verdict = Gauge(
            "mlops_gates_live_verdict",
            "1 for the analysis' current verdict, 0 for the others",
            [*pair, "verdict"],
            registry=self.registry,
        )
        self.check = Gauge(
            "mlops_gates_live_check",
            "A check's estimate, lower and upper bound, and limit",
            [*pair, "check", "value"],
            registry=self.registry,
        )
        self.failing = Gauge(
            "mlops_gates_live_check_failing",
            "1 when a check failed (a rollback trigger)",
            [*pair, "check"],
            registry=self.registry,
        )
        self.rows = Gauge(
            "mlops_gates_live_rows",
            "Requests and labelled requests per version",
            ["model", "environment", "version", "kind"],
            registry=self.registry,
        )
        self.answers = Counter(
            "mlops_gates_live_analyses",
            "Analyses answered, by verdict",
            [*pair, "verdict"],
            registry=self.registry,
        )
        self.lock = threading.Lock()

    def observe(self, analysis: Any) -> None:
        pair = {**self.base, "canary": analysis.canary, "stable": analysis.stable}
        with self.lock:
            for v in VERDICTS:
                self.verdict.labels(**pair, verdict=v).set(1.0 if v == analysis.verdict else 0.0)
            self.answers.labels(**pair, verdict=analysis.verdict).inc()
            for c in analysis.checks:
                self.failing.labels(**pair, check=c.name).set(1.0 if c.status == "fail" else 0.0)
                for name in ("estimate", "lower", "upper", "limit"):
                    value = getattr(c, name)
                    if value is not None and math.isfinite(value):
                        self.check.labels(**pair, check=c.name, value=name).set(value)
            for version, counts in analysis.rows.items():
                for kind, n in counts.items():
                    self.rows.labels(**self.base, version=version, kind=kind).set(n)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        with self.lock:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
