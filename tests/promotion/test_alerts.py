"""Alerts when a rollback trigger fires: to a real Alertmanager and a Slack-compatible webhook, once per
trigger until `repeat` passes; a failing channel is reported without the webhook's secret and never stops the
rollback it reports on."""

from __future__ import annotations

import datetime as dt

from mlops_gates.promotion.alerts import Alert, notify
from tests.servers.alerting import alertmanager, alerts_in, slack  # noqa: F401  (fixtures)

ALERT = Alert(
    "churn",
    "production",
    "live analysis",
    "v2",
    "canary v2 is worse than v1",
    ("accuracy: difference -0.06 in [-0.07, -0.05], limit -0.02",),
    action="rolled production back",
)


def test_an_alert_reaches_alertmanager_and_slack_once(tmp_path, alertmanager, slack, monkeypatch):  # noqa: F811
    monkeypatch.setenv("SLACK_HOOK", slack.url)
    settings = {"alertmanager": alertmanager, "slack_webhook_env": "SLACK_HOOK", "repeat": "1h"}
    now = dt.datetime.now(dt.timezone.utc)  # Alertmanager refuses an alert that starts in the future
    assert notify(ALERT, settings, tmp_path, now) == ["Alertmanager: sent", "Slack webhook: sent"]
    (got,) = alerts_in(alertmanager)
    assert got["labels"]["alertname"] == "MlopsGatesRollback" and got["labels"]["model"] == "churn"
    assert got["labels"]["environment"] == "production" and got["labels"]["subject"] == "v2"
    assert got["annotations"]["action"] == "rolled production back"
    assert "accuracy" in got["annotations"]["description"]
    (body,) = slack.bodies
    assert "canary v2 is worse than v1" in body["text"] and "Action: rolled production back" in body["text"]
    again = notify(ALERT, settings, tmp_path, now + dt.timedelta(minutes=30))
    assert again[0].startswith("not sent again") and len(slack.bodies) == 1
    later = notify(ALERT, {**settings, "repeat": "0s"}, tmp_path)  # once `repeat` has passed
    assert later == ["Alertmanager: sent", "Slack webhook: sent"] and len(slack.bodies) == 2
    other = notify(Alert("churn", "staging", "watch", "sha256:ab", "drift"), settings, tmp_path, now)
    assert other[1] == "Slack webhook: sent"  # another trigger is another alert


def test_a_failing_channel_is_reported_without_the_secret(tmp_path, slack, monkeypatch):  # noqa: F811
    monkeypatch.setenv("SLACK_HOOK", slack.url)
    slack.status = 403
    (said,) = notify(ALERT, {"slack_webhook_env": "SLACK_HOOK"}, tmp_path)
    assert said.startswith("Slack webhook failed: ") and "403" in said
    assert "s3cr3t-t0ken" not in said and "T0/B0" not in said
    monkeypatch.delenv("SLACK_HOOK")
    (said,) = notify(ALERT, {"slack_webhook_env": "SLACK_HOOK", "repeat": "0s"}, tmp_path)
    assert said == "Slack webhook: $SLACK_HOOK is not set"
    (said,) = notify(ALERT, {"alertmanager": "http://127.0.0.1:9", "repeat": "0s"}, tmp_path)
    assert said.startswith("Alertmanager failed: ") and "cannot reach" in said


def test_watch_every_looks_again_and_alerts_once_per_trigger(tmp_path, monkeypatch, capsys, slack):  # noqa: F811
    """`watch --every 1s --count 2 --rollback`: the first look rolls the drifted version back and alerts; the
    second finds the version it went back to drifted too, cannot go further back, and says so in a second
    alert (another subject); nothing is sent twice."""
    import json

    import pyarrow.parquet as pq
    import yaml

    from mlops_gates import policy as P
    from mlops_gates.promotion.promote import promote, state
    from tests.promotion.release import HOUR, Release, cli
    from tests.promotion.test_promotion import shifted

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLACK_HOOK", slack.url)
    r = Release(tmp_path, monkeypatch)
    doc = yaml.safe_load(r.policy.read_text())
    doc["promotion"]["alerts"] = {"slack_webhook_env": "SLACK_HOOK"}
    r.policy.write_text(yaml.safe_dump(doc, sort_keys=False))
    r.pol = P.load(r.policy)
    a, b = r.model("a", ["x1", "x2"]), r.model("b", ["x1", "x2", "x3"])
    r.promote(a, "staging", HOUR)
    promote(r.reg, r.pol, r.name, b, "staging", actor="alice")
    pq.write_table(shifted(11, shift=2.0).drop(["label"]), tmp_path / "window.parquet")
    code, out, err = cli(
        r,
        capsys,
        "watch",
        "--model",
        "churn",
        "--env",
        "staging",
        "--data",
        "window.parquet",
        "--rollback",
        "--actor",
        "alice",
        "--every",
        "1s",
        "--count",
        "2",
    )
    assert code == 1 and f"rolled staging back to {a}" in err and "rollback refused" in err
    assert state(r.reg)[1][(r.name, "staging")].digest == a
    texts = [body["text"] for body in slack.bodies]
    assert len(texts) == 2 and f"Action: rolled staging back to {a}" in texts[0]
    assert "Action: rollback refused" in texts[1]
    reports = [json.loads(part) for part in out.replace("}\n{", "}\n\x00{").split("\x00")]
    assert [rep["digest"] for rep in reports] == [b, a]


def test_values_from_the_data_reach_slack_as_text_never_as_mentions_or_links(tmp_path, slack, monkeypatch):  # noqa: F811
    monkeypatch.setenv("SLACK_HOOK", slack.url)
    hostile = Alert(
        "churn",
        "production",
        "live analysis",
        "v2",
        "canary v2 is worse",
        ("group <!channel> & <https://evil.example|docs>: gap 0.2",),
    )
    assert notify(hostile, {"slack_webhook_env": "SLACK_HOOK"}, tmp_path) == ["Slack webhook: sent"]
    (body,) = slack.bodies
    assert "<!channel>" not in body["text"] and "<https://" not in body["text"]
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|docs&gt;" in body["text"]
