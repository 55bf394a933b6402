"""What `mlops-gates serve` answers from (the HTTP endpoints are in live/api.py).

Each (canary, stable) pair keeps its state between calls and reads only the log files that are new or have
grown since the last call, so a call costs the new windows, not the history. The service changes nothing
anywhere: it reads logs and answers; every endpoint is read-only."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_gates.live.analyze import Analysis, Settings, feed_labels, feed_requests, judge, new_state
from mlops_gates.live.logs import files
from mlops_gates.live.state import LiveState
from mlops_gates.policy import Policy

MAX_BODY = 64 * 1024  # Flagger's payload is a few hundred bytes
# Flagger: 2xx lets the rollout go on, anything else holds it (rollout hooks count a failed check); a rollback
# hook's 2xx fails the canary at once.
FLAGGER_OK = {
    "confirm-rollout": {
        "PROMOTE",
        "CONTINUE",
        "HOLD",
        "ROLLBACK",
    },  # ready to start: the analysis comes later
    "pre-rollout": {"PROMOTE", "CONTINUE"},
    "rollout": {"PROMOTE", "CONTINUE"},
    "confirm-promotion": {"PROMOTE"},
    "rollback": {"ROLLBACK"},
}


@dataclass
class Follower:
    """One canary/stable pair: its state, and the files (with their sizes) already fed to it."""

    state: LiveState
    split: float | None
    seen: dict[Path, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Service:
    """The analyses the service keeps, one per canary/stable pair."""

    def __init__(self, pol: Policy, requests: list[Path], labels: list[Path]) -> None:
        self.pol, self.settings = pol, Settings.of(pol)
        self.requests, self.labels = requests, labels
        self.followers: dict[tuple[str, str, float | None], Follower] = {}
        self.last: dict[tuple[str, str], Analysis] = {}
        self.lock = threading.Lock()

    def analysis(self, canary: str, stable: str, split: float | None = None) -> Analysis:
        key = (canary, stable, split)
        with self.lock:
            if key not in self.followers:
                self.followers[key] = Follower(new_state(self.pol, self.settings, canary, stable), split)
            f = self.followers[key]
        with f.lock:
            for ds in self._new(f, self.requests):
                feed_requests(f.state, self.settings, ds, split)
            for ds in self._new(f, self.labels):
                feed_labels(f.state, self.settings, ds)
            result = judge(f.state, self.settings)
        self.last[(canary, stable)] = result
        return result

    @staticmethod
    def _new(f: Follower, paths: list[Path]) -> list[Any]:
        """Files not fed yet, or grown since (a grown file is fed again: ids already seen count once)."""
        fresh = []
        for ds in files(paths) if paths else []:
            size = ds.path.stat().st_size
            if f.seen.get(ds.path) != size:
                fresh.append(ds)
                f.seen[ds.path] = size
        return fresh

    def ready(self) -> str | None:
        """Why the service cannot answer yet, or None."""
        missing = [str(p) for p in self.requests if not p.exists()]
        return f"no logs at {', '.join(missing)}" if missing else None
