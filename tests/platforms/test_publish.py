"""Publishing against fake GitHub and GitLab APIs on loopback: one sticky comment, statuses per gate,
robust HTTP, fork safety, and every request body checked against the platform's OpenAPI description."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from mlops_gates.errors import PublishError
from mlops_gates.evaluation import run
from mlops_gates.platforms.github import GitHub, escape_data, escape_property
from mlops_gates.platforms.gitlab import GitLab
from mlops_gates.platforms.http import Http
from mlops_gates.platforms.publish import publish
from mlops_gates.report.markdown import MARKER
from tests.conftest import binary_policy, cli_main, write_policy
from tests.fakes.api import FakeGitHub, FakeGitLab, Fault
from tests.fakes.openapi import available, validate

HEAD, MERGE = "a" * 40, "b" * 40
TOKEN = "ghp_SECRETtoken1234567890"
GATES = [
    {"type": "accuracy", "metrics": [{"metric": "accuracy", "op": ">=", "value": 0.6}]},
    {"type": "fairness", "metrics": [{"metric": "demographic_parity_ratio", "op": ">=", "value": 0.99}]},
]


def github_env(
    tmp_path: Path, api: str, *, pr: int = 7, event_name: str = "pull_request", event: dict | None = None
) -> dict[str, str]:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event or {"pull_request": {"number": pr, "head": {"sha": HEAD}}}))
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_API_URL": api,
        "GITHUB_REPOSITORY": "acme/models",
        "GITHUB_SHA": MERGE,
        "GITHUB_EVENT_NAME": event_name,
        "GITHUB_EVENT_PATH": str(path),
        "GITHUB_RUN_ID": "99",
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "output.txt"),
    }


def make_record(folder: Path, env: dict[str, str], monkeypatch, out: str = "out") -> Path:
    with monkeypatch.context() as m:
        for k, v in env.items():
            m.setenv(k, v)
        run(write_policy(folder / "gates.yml", binary_policy(gates=GATES)), folder / out)
    return folder / out / "decision.json"


def gh_driver(env: dict[str, str], waits: list[float] | None = None, **kw) -> GitHub:
    """The driver with a recording sleep, so retries and rate limits cost no test time."""
    http = Http(
        env["GITHUB_API_URL"],
        {"Authorization": f"Bearer {env['GITHUB_TOKEN']}"},
        secrets=(env["GITHUB_TOKEN"],),
        sleep=(waits.append if waits is not None else (lambda s: None)),
    )
    return GitHub(env, http=http, **kw)


def test_two_runs_leave_one_comment_and_statuses_on_the_head(binary_case, tmp_path, monkeypatch, capsys):
    folder, _ = binary_case
    with FakeGitHub({TOKEN: "gate-bot"}, {7: HEAD}) as gh:
        for i in range(150):  # earlier discussion pushes our comment off the first page
            gh.add_comment(7, "reviewer", f"comment {i}")
        env = github_env(tmp_path, gh.url)
        record = make_record(folder, env, monkeypatch)
        first = publish(record, env=env)
        assert first.comment == "created"
        report2 = record.parent / "report.md"
        report2.write_text(report2.read_text() + "\nsecond run\n")
        second = publish(record, env=env)
        ours = [c for c in gh.comments[7] if MARKER in c["body"]]
        assert second.comment == "updated" and len(ours) == 1 and ours[0]["body"].endswith("second run\n")
        assert len(gh.comments[7]) == 151
        rec = json.loads(record.read_text())
        contexts = {s["context"] for s in gh.statuses}
        assert contexts == {"mlops-gates", "mlops-gates/accuracy", "mlops-gates/fairness"}
        assert {s["sha"] for s in gh.statuses} == {HEAD}  # the PR's head, not the merge commit
        assert all(len(s["description"]) <= 140 for s in gh.statuses)
        overall = [s for s in gh.statuses if s["context"] == "mlops-gates"][-1]
        assert overall["state"] == ("success" if rec["decision"] == "PROMOTE" else "failure")
        assert overall["target_url"] == "https://github.example/acme/models/actions/runs/99"
        assert validate("github", gh.calls) >= 8 or not available("github")  # every body GitHub's API allows
        # step summary, outputs and escaped annotations
        assert MARKER in (tmp_path / "summary.md").read_text()
        assert f"decision={rec['decision']}" in (tmp_path / "output.txt").read_text()
        assert "::error file=" in capsys.readouterr().out
        pages = [c for c in gh.calls if c.method == "GET" and c.path.endswith("/comments")]
        assert any(c.query.get("page") == "2" for c in pages)


def test_github_token_identity_and_another_users_marker(binary_case, tmp_path, monkeypatch):
    folder, _ = binary_case
    with FakeGitHub({TOKEN: "github-actions[bot]"}, {7: HEAD}) as gh:
        imposter = gh.add_comment(7, "someone", f"{MARKER}\nnot ours")
        env = github_env(tmp_path, gh.url)
        record = make_record(folder, env, monkeypatch)
        assert publish(record, env=env).comment == "created"
        assert publish(record, env=env).comment == "updated"
        assert imposter["body"] == f"{MARKER}\nnot ours"  # never edited
        mine = [c for c in gh.comments[7] if c["user"]["login"] == "github-actions[bot]"]
        assert len(mine) == 1


def test_rate_limits_and_server_errors_are_retried(binary_case, tmp_path, monkeypatch):
    folder, _ = binary_case
    with FakeGitHub({TOKEN: "gate-bot"}, {7: HEAD}) as gh:
        env = github_env(tmp_path, gh.url)
        record = make_record(folder, env, monkeypatch)
        reset = str(int(time.time()) + 5)
        gh.faults += [
            Fault(
                "POST",
                r".*/statuses/.*",
                403,
                {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset},
                {"message": "API rate limit exceeded"},
            ),
            Fault(
                "POST",
                r".*/comments",
                429,
                {"retry-after": "3"},
                {"message": "You have exceeded a secondary rate limit"},
            ),
            Fault("GET", r".*/comments", 502, {}, {"message": "Bad gateway"}, times=2),
        ]
        waits: list[float] = []
        res = publish(record, env=env, drv=gh_driver(env, waits))
        assert res.comment == "created" and res.statuses == 3
        assert 3.0 in waits  # retry-after honoured
        assert any(4 <= w <= 7 for w in waits)  # waited for x-ratelimit-reset
        assert waits.count(1.0) >= 1 and 2.0 in waits  # exponential backoff on 502


def test_persistent_failure_is_clear_and_never_leaks_the_token(binary_case, tmp_path, monkeypatch):
    folder, _ = binary_case
    with FakeGitHub({TOKEN: "gate-bot"}, {7: HEAD}) as gh:
        env = github_env(tmp_path, gh.url)
        record = make_record(folder, env, monkeypatch)
        gh.faults.append(Fault("GET", r".*/pulls/7", 500, {}, {"message": f"boom {TOKEN}"}, times=99))
        waits: list[float] = []
        with pytest.raises(PublishError) as info:
            publish(record, env=env, drv=gh_driver(env, waits))
        msg = info.value.render()
        assert "HTTP 500" in msg and TOKEN not in msg and "***" in msg
        assert waits == [1.0, 2.0, 4.0, 8.0]  # bounded: four retries, then a clear error
        assert TOKEN not in repr(gh_driver(env))


def test_unreachable_api_and_bad_token(binary_case, tmp_path, monkeypatch):
    folder, _ = binary_case
    env = github_env(tmp_path, "http://127.0.0.1:9")  # nothing listens on the discard port
    record = make_record(folder, env, monkeypatch)
    with pytest.raises(PublishError, match="cannot reach the API after 5 tries"):
        publish(record, env=env, drv=gh_driver(env))
    with FakeGitHub({"other": "x"}, {7: HEAD}) as gh:
        env = github_env(tmp_path, gh.url)
        with pytest.raises(PublishError, match="HTTP 401") as info:
            publish(record, env=env, drv=gh_driver(env))
        assert "token was refused" in info.value.render()


def test_fork_safe_workflow_run_checks_the_subject(binary_case, tmp_path, monkeypatch):
    folder, _ = binary_case
    with FakeGitHub({TOKEN: "gate-bot"}, {7: HEAD}) as gh:
        record = make_record(
            folder, github_env(tmp_path, gh.url), monkeypatch
        )  # made by the pull_request run
        other = {"workflow_run": {"head_sha": "c" * 40, "pull_requests": []}}
        env = github_env(tmp_path, gh.url, event_name="workflow_run", event=other)
        with pytest.raises(PublishError, match="the triggering run about cccccccccccc"):
            publish(record, env=env)
        same = {"workflow_run": {"head_sha": HEAD, "pull_requests": []}}  # forks: GitHub lists no PR here
        env = github_env(tmp_path, gh.url, event_name="workflow_run", event=same)
        assert publish(record, env=env).comment == "created"
        gh.heads[7] = "d" * 40  # the PR moved on: a stale record must not be posted
        with pytest.raises(PublishError, match="PR 7 has moved on"):
            publish(record, env=env)


def test_check_run_option(binary_case, tmp_path, monkeypatch):
    folder, _ = binary_case
    with FakeGitHub({TOKEN: "gate-bot"}, {7: HEAD}) as gh:
        env = github_env(tmp_path, gh.url)
        record = make_record(folder, env, monkeypatch)
        publish(record, env=env, check_run=True)
        assert len(gh.check_runs) == 1 and gh.check_runs[0]["head_sha"] == HEAD
        assert MARKER in gh.check_runs[0]["output"]["summary"]
        validate("github", gh.calls)


def test_annotation_escaping():
    assert escape_data("a%b\r\nc") == "a%25b%0D%0Ac"
    assert escape_property("x:y,z\n") == "x%3Ay%2Cz%0A"


# ------------------------------------------------------------------ GitLab
GL_TOKEN = "glpat-SECRET0987654321"


def gitlab_env(api: str, **extra: str) -> dict[str, str]:
    return {
        "GITLAB_CI": "true",
        "CI_API_V4_URL": f"{api}/api/v4",
        "CI_PROJECT_ID": "42",
        "CI_PROJECT_PATH": "grp/models",
        "CI_MERGE_REQUEST_IID": "3",
        "CI_COMMIT_SHA": HEAD,
        "CI_COMMIT_REF_NAME": "feature",
        "CI_JOB_URL": "https://gitlab.example/grp/models/-/jobs/1",
        "GITLAB_TOKEN": GL_TOKEN,
        **extra,
    }


def test_gitlab_sticky_note_statuses_and_widget_files(binary_case, monkeypatch):
    folder, _ = binary_case
    with FakeGitLab({GL_TOKEN: 11}) as gl:
        for i in range(150):
            gl.add_note(3, 12, f"note {i}")
        gl.add_note(3, 12, f"{MARKER}\nsomeone else's")
        env = gitlab_env(gl.url)
        record = make_record(folder, env, monkeypatch)
        assert publish(record, env=env).comment == "created"
        res = publish(record, env=env)  # same states again: GitLab's 400 for a repeated state is harmless
        assert res.comment == "updated" and res.statuses == 3
        ours = [n for n in gl.notes[3] if n["author"]["id"] == 11]
        assert len(ours) == 1 and len(gl.notes[3]) == 152
        assert {s["name"] for s in gl.statuses} == {
            "mlops-gates",
            "mlops-gates/accuracy",
            "mlops-gates/fairness",
        }
        assert all(s["state"] in ("success", "failed") and s["sha"] == HEAD for s in gl.statuses)
        assert any(c.query.get("page") == "2" for c in gl.calls if c.path.endswith("/notes"))
        validate("gitlab", [c for c in gl.calls if "/statuses/" in c.path])
        cq = json.loads((record.parent / "gl-code-quality.json").read_text())
        rec = json.loads(record.read_text())
        assert {e["check_name"] for e in cq} == {
            f"mlops-gates/{g['name']}" for g in rec["gates"] if g["status"] != "PASS"
        }
        assert f"MLOPS_GATES_DECISION={rec['decision']}" in (record.parent / "mlops-gates.env").read_text()


def test_gitlab_job_token_is_refused_with_the_fix():
    with pytest.raises(PublishError) as info:
        GitLab({"GITLAB_CI": "true", "CI_JOB_TOKEN": "job-123"})
    assert "CI_JOB_TOKEN" in info.value.render() and "project access token" in info.value.render()
    with pytest.raises(PublishError, match="holds the job token"):
        GitLab({"CI_JOB_TOKEN": "job-123", "GITLAB_TOKEN": "job-123"})


def test_gitlab_refuses_a_record_about_another_commit(binary_case, monkeypatch):
    folder, _ = binary_case
    with FakeGitLab({GL_TOKEN: 11}) as gl:
        record = make_record(folder, gitlab_env(gl.url), monkeypatch)
        with pytest.raises(PublishError, match="this pipeline about cccccccccccc"):
            publish(record, env=gitlab_env(gl.url, CI_COMMIT_SHA="c" * 40))
        assert gl.statuses == []


def test_local_prints_the_report(binary_case, monkeypatch, capsys):
    folder, _ = binary_case
    record = make_record(folder, {}, monkeypatch)
    res = publish(record, env={})
    assert res.platform == "local" and MARKER in capsys.readouterr().out


def test_the_openapi_check_rejects_a_body_the_api_would_refuse():
    from openapi_core.validation.request.exceptions import InvalidRequestBody

    from tests.fakes.api import Call

    bad = Call(
        "POST",
        f"/repos/acme/models/statuses/{HEAD}",
        {},
        {"content-type": "application/json"},
        {"state": "great", "context": "x"},
    )
    if not available("github"):
        pytest.skip("GitHub's OpenAPI description is not installed (make test installs it)")
    with pytest.raises(InvalidRequestBody):
        validate("github", [bad])
    bad = Call(
        "POST",
        f"/api/v4/projects/42/statuses/{HEAD}",
        {},
        {"content-type": "application/json"},
        {"state": "failure"},
    )
    with pytest.raises(InvalidRequestBody):
        validate("gitlab", [bad])  # GitLab says "failed", not GitHub's "failure"


def test_cli_publish_keeps_the_decisions_exit_code(binary_case, tmp_path, monkeypatch, capsys):

    folder, _ = binary_case
    with FakeGitHub({TOKEN: "gate-bot"}, {7: HEAD}) as gh:
        env = github_env(tmp_path, gh.url)
        record = make_record(folder, env, monkeypatch)
        decision_code = 0 if json.loads(record.read_text())["decision"] == "PROMOTE" else 1
        for k, v in env.items():
            monkeypatch.setenv(k, v)

        def main(*args: str) -> int:
            return cli_main(monkeypatch, *args)

        assert main("publish", str(record)) == decision_code
        gh.faults.append(
            Fault(
                "PATCH",
                r".*/issues/comments/\d+",
                403,
                {},
                {"message": "Resource not accessible by integration"},
                times=2,
            )
        )
        assert main("publish", str(record)) == decision_code  # a publish failure does not change the decision
        err = capsys.readouterr().err
        assert "publish failed" in err and "permission" in err and TOKEN not in err
        assert main("publish", str(record), "--strict") == 4
        assert (
            main(
                "evaluate", "--policy", str(folder / "gates.yml"), "--out", str(folder / "out2"), "--publish"
            )
            == decision_code
        )
        assert len([c for c in gh.comments[7] if MARKER in c["body"]]) == 1
        (folder / "broken.json").write_text("{}")
        assert main("publish", str(folder / "broken.json")) == 2
        assert "not a valid decision record" in capsys.readouterr().err


def test_reports_and_descriptions_over_the_limits_are_cut_not_refused(binary_case, tmp_path, monkeypatch):
    """The fakes answer 422 above GitHub's limits (65,536 characters a comment, 140 a status description, as
    GitHub does); a report and reasons past them go through publish cut, with the marker kept."""
    folder, _ = binary_case
    with FakeGitHub({TOKEN: "gate-bot"}, {7: HEAD}) as gh:
        env = github_env(tmp_path, gh.url)
        record = make_record(folder, env, monkeypatch)
        rec = json.loads(record.read_text())
        rec["gates"][0]["reason"] = "a very long reason " * 40
        record.write_text(json.dumps(rec))
        report = record.parent / "report.md"
        report.write_text(report.read_text() + "\n" + "| row | of a huge table |\n" * 8000)
        assert len(report.read_text()) > 65_536
        out = publish(record, env=env, check_run=True)
        assert out.comment == "created"
        body = gh.comments[7][0]["body"]
        assert len(body) <= 65_536 and body.startswith(MARKER) and "cut to fit" in body
        assert all(len(s["description"]) <= 140 for s in gh.statuses)
        assert len(gh.check_runs[0]["output"]["summary"]) < 65_536
        assert publish(record, env=env).comment == "updated"  # the cut comment is still found by its marker
        assert len(gh.comments[7]) == 1


def test_publish_refuses_a_record_about_another_head(binary_case, tmp_path, monkeypatch):
    """A record made for one head SHA is never posted on a PR whose head is another."""
    folder, _ = binary_case
    with FakeGitHub({TOKEN: "gate-bot"}, {7: HEAD}) as gh:
        env = github_env(tmp_path, gh.url)
        record = make_record(folder, env, monkeypatch)
        gh.heads[7] = "c" * 40  # pushed to since the gate ran
        with pytest.raises(PublishError, match="moved on"):
            publish(record, env=env)
        assert not gh.comments and not gh.statuses
