"""Telling people when a rollback trigger fires: an alert to Alertmanager (its v2 API, which groups, routes and
silences it as the on-call team set up) and to a Slack-compatible incoming webhook, each trigger at most once
until `repeat` has passed (the ledger folder keeps what was sent). A notification that fails is reported and
never raised: the rollback it tells of stands. The webhook's URL is a secret: it comes from the environment and
never reaches a message."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_gates.errors import GateError
from mlops_gates.policy.build import seconds

SENT = "alerts.jsonl"


@dataclass(frozen=True)
class Alert:
    model: str
    environment: str
    trigger: str  # what fired: "live analysis", "watch"
    subject: str  # what it fired on: the canary's version, a digest
    summary: str
    reasons: tuple[str, ...] = ()
    action: str = ""  # what was done: "rolled back to sha256:...", "rollback refused: ..."
    evidence: str | None = None  # where the full analysis is: a path or a URL
    labels: dict[str, str] = field(default_factory=dict)

    def identity(self) -> dict[str, str]:
        return {
            "alertname": "MlopsGatesRollback",
            "severity": "critical",
            "model": self.model,
            "environment": self.environment,
            "trigger": self.trigger,
            "subject": self.subject,
            **self.labels,
        }

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()

    def text(self) -> str:
        lines = [f"mlops-gates: {self.summary} ({self.model} in {self.environment})"]
        lines += [f"- {r}" for r in self.reasons[:10]]
        lines += [f"Action: {self.action}"] if self.action else []
        lines += [f"Evidence: {self.evidence}"] if self.evidence else []
        return "\n".join(lines)


def notify(alert: Alert, settings: dict[str, Any], ledger: Path, now: dt.datetime | None = None) -> list[str]:
    """Send the alert where the policy's promotion.alerts says; what happened, one line per channel."""
    now = now or dt.datetime.now(dt.timezone.utc)
    repeat = dt.timedelta(seconds=seconds(settings.get("repeat", "4h")))
    if _sent_within(ledger / SENT, alert.fingerprint(), now - repeat):
        return [f"not sent again: the same alert went out less than {settings.get('repeat', '4h')} ago"]
    done = []
    if settings.get("alertmanager"):
        done.append(_channel("Alertmanager", lambda: _alertmanager(settings["alertmanager"], alert, now)))
    env = settings.get("slack_webhook_env")
    if env:
        url = os.environ.get(env, "")
        done.append(
            _channel("Slack webhook", lambda: _slack(url, alert))
            if url
            else f"Slack webhook: ${env} is not set"
        )
    ledger.mkdir(parents=True, exist_ok=True)
    with (ledger / SENT).open("a") as f:
        f.write(
            json.dumps({"time": now.isoformat(), "fingerprint": alert.fingerprint(), "sent": done}) + "\n"
        )
    return done


def _channel(name: str, send: Any) -> str:
    try:
        send()
    except GateError as exc:
        return f"{name} failed: {exc.render()}"
    return f"{name}: sent"


def _sent_within(log: Path, fingerprint: str, since: dt.datetime) -> bool:
    if not log.exists():
        return False
    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
            when = dt.datetime.fromisoformat(entry["time"])
        except (ValueError, KeyError, TypeError):
            continue  # a torn line: not proof that anything was sent
        if entry.get("fingerprint") == fingerprint and when >= since:
            return True
    return False


def _alertmanager(url: str, alert: Alert, now: dt.datetime) -> None:
    from mlops_gates.platforms.http import Http

    payload = [
        {
            "labels": alert.identity(),
            "annotations": {
                "summary": alert.summary,
                "description": "\n".join(alert.reasons),
                "action": alert.action,
                **({"evidence": alert.evidence} if alert.evidence else {}),
            },
            "startsAt": now.isoformat().replace("+00:00", "Z"),
        }
    ]
    Http(url, {}, retries=2, max_total=30.0).request("POST", "/api/v2/alerts", json_body=payload)


def _slack(url: str, alert: Alert) -> None:
    from urllib.parse import urlsplit

    from mlops_gates.platforms.http import Http

    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}"
    Http(base, {}, secrets=(url, parts.path), retries=2, max_total=30.0).request(
        "POST", parts.path or "/", json_body={"text": slack_escaped(alert.text())}
    )


def slack_escaped(text: str) -> str:
    """Text from the data (a group's name, a reason) as Slack shows it, never as a mention or a link:
    `<!channel>` would page everyone, `<https://x|y>` would disguise a link (Slack's three escapes)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
