"""Promotion end to end: real models trained here, gated, signed and registered, then walked through
staging, canary and production; every rule refuses what it should, and tampering is caught."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_gates import policy as policy_mod
from mlops_gates.errors import Refused, Tampered
from mlops_gates.evaluation import run
from mlops_gates.promotion.promote import promote, register, rollback, state, verify_registry
from mlops_gates.promotion.stores import open_registry
from mlops_gates.signing.envelope import PrivateKey
from mlops_gates.signing.sign import sign
from tests.conftest import write_policy
from tests.promotion.release import HOUR, cli, cli_main_, data, refused
from tests.signing.test_signing import keypair


def test_a_model_walks_through_staging_canary_and_production_and_back(release):
    r = release
    a = r.model("a", ["x1", "x2"])
    assert r.verdict == "PROMOTE"
    assert "environments cannot be skipped" in refused(r.promote, a, "canary", HOUR)
    r.promote(a, "staging", HOUR, actor="ci-bot")
    assert "needs 1 h" in refused(r.promote, a, "canary", 1.5 * HOUR)  # 0.5 h in staging
    r.promote(a, "canary", 3 * HOUR, actor="ci-bot")
    assert "ci-bot may not promote into production" in refused(r.promote, a, "production", 4 * HOUR, "ci-bot")
    assert "carol wrote this change" in refused(r.promote, a, "production", 4 * HOUR, "carol")
    first = r.promote(a, "production", 4 * HOUR)  # nothing serves yet: no canary to go through
    assert first.descriptor["traffic"] == [{"digest": a, "percent": 100, "uri": first.descriptor["uri"]}]
    uri = first.descriptor["uri"]
    if r.reg.location.startswith("mlflow+"):  # the run's artifacts, which a deploy job fetches via the server
        assert uri.startswith("mlflow-artifacts:/") and uri.endswith("/model/files")
    else:
        assert Path(uri, "model.skops").is_file()

    b = r.model("b", ["x1", "x2", "x3"])
    r.promote(b, "staging", HOUR)
    r.promote(b, "canary", 2 * HOUR)
    assert "through canary steps first" in refused(r.promote, b, "production", 3 * HOUR)
    assert "not a canary step" in refused(r.promote, b, "production", 3 * HOUR, traffic=20)
    step = r.promote(b, "production", 3 * HOUR, traffic=10)
    assert [(t["digest"], t["percent"]) for t in step.descriptor["traffic"]] == [(a, 90), (b, 10)]
    assert "steps only go up" in refused(r.promote, b, "production", 3 * HOUR, traffic=10)
    r.promote(b, "production", 4 * HOUR, traffic=50)
    done = r.promote(b, "production", 5 * HOUR)
    assert done.descriptor["digest"] == b and len(done.descriptor["traffic"]) == 1

    back = rollback(r.reg, r.pol, r.name, "production", actor="alice", now=r.decided + 6 * HOUR)
    assert back.descriptor["digest"] == a and back.entry["replaced"] == b
    _, pointers = state(r.reg)
    assert pointers[(r.name, "production")].digest == a and pointers[(r.name, "staging")].digest == b
    n, problems = verify_registry(r.reg)
    assert problems == [] and n > 10
    actions = [(e["action"], e["outcome"]) for e in r.reg.ledger.entries()]
    assert actions.count(("promote", "refused")) == 5 and ("rollback", "done") in actions


def test_refuses_unsigned_held_stale_and_foreign_models(release):
    r = release
    unsigned = r.model("u", ["x1", "x2", "x3"], signed=False)
    assert "is not signed" in refused(r.promote, unsigned, "staging", HOUR)
    weak = r.model("weak", ["x3"])  # x3 carries no signal: the accuracy gate fails
    assert r.verdict == "REJECT"
    assert "the gate decided REJECT, not PROMOTE" in refused(r.promote, weak, "staging", HOUR)
    borderline = r.model("borderline", ["x2"])  # AUC 0.67, its interval straddles 0.68: inconclusive
    assert r.verdict == "HOLD"
    assert "the gate decided HOLD, not PROMOTE" in refused(r.promote, borderline, "staging", HOUR)
    good = r.model("good", ["x1", "x2"])
    assert "days old; the policy accepts 7" in refused(r.promote, good, "staging", dt.timedelta(days=8))
    foreign = r.model("foreign", ["x1"], key=r.other_key)
    assert "no signer that staging trusts" in refused(r.promote, foreign, "staging", HOUR)
    # a changed policy invalidates decisions made under the old one
    text = r.policy.read_text().replace("value: 0.68", "value: 0.69")
    r.policy.write_text(text)
    newer = policy_mod.load(r.policy)
    message = refused(promote, r.reg, newer, r.name, good, "staging", actor="alice", now=r.decided + HOUR)
    assert "not the current" in message
    entries = r.reg.ledger.entries()
    assert [e["outcome"] for e in entries if e["action"] == "promote"] == ["refused"] * 6
    assert verify_registry(r.reg)[1] == []


def test_tampering_is_detected_and_never_followed(folder_release, capsys):
    r = folder_release
    a = r.model("a", ["x1", "x2"])
    b = r.model("b", ["x1", "x2", "x3"])
    r.promote(a, "staging", HOUR)
    pointer = r.root / "registry" / "models" / "churn" / "environments" / "staging.json"
    saved = pointer.read_text()
    pointer.write_text(saved.replace(a, b))  # a pointer moved by hand
    with pytest.raises(Tampered, match="staging pointer of churn does not match the audit log"):
        r.promote(a, "canary", 3 * HOUR)
    pointer.write_text(saved.replace(a, "sha256:" + "1" * 64))  # to an unknown digest
    assert any("does not match the audit log" in p for p in verify_registry(r.reg)[1])
    pointer.write_text(saved)

    weights = Path(r.reg.store.version("churn", b).files) / "model.skops"
    blob = weights.read_bytes()
    weights.write_bytes(blob + b"\0")  # a registered version changed
    assert any("files changed after it was registered: model.skops" in p for p in verify_registry(r.reg)[1])
    with pytest.raises(Tampered):
        r.promote(b, "staging", HOUR)
    weights.write_bytes(blob)

    log = r.root / "registry" / "audit.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    edited = json.loads(lines[1])
    edited["actor"] = "mallory"
    log.write_text(lines[0] + json.dumps(edited) + "\n" + "".join(lines[2:]))
    assert verify_registry(r.reg)[1] == [
        "audit log: entry 2: was changed after it was written (its hash does not match)"
    ]
    log.write_text("".join(lines[:-1]))  # the last entry cut off
    assert "head record says" in verify_registry(r.reg)[1][0]
    log.write_text("".join(lines[:-1]) + lines[-1][:40])  # cut mid-line
    assert "is not JSON" in verify_registry(r.reg)[1][0]
    log.write_text("".join(lines))
    assert verify_registry(r.reg)[1] == []
    code, _, err = cli(r, capsys, "audit", "verify", "--registry", "registry")
    assert code == 0
    log.write_text("".join([lines[0], lines[2], lines[1], *lines[3:]]))
    code, _, err = cli(r, capsys, "audit", "verify", "--registry", "registry")
    assert code == 1 and "BROKEN audit log: entry 2" in err


def test_two_racing_promotions_one_wins_the_log_stays_one_chain(release):
    r = release
    a = r.model("a", ["x1", "x2"])
    b = r.model("b", ["x1", "x2", "x3"])
    results: dict[str, object] = {}
    ledger = r.reg.ledger
    hold = ledger.locked
    waiting = threading.Semaphore(0)

    def counted(*args, **kw):  # each promotion reaches the lock only after it has read and checked the state
        waiting.release()
        return hold(*args, **kw)

    def go(digest: str) -> None:
        try:
            results[digest] = r.promote(digest, "staging", HOUR)
        except Refused as exc:
            results[digest] = exc

    # hold the lock until both have checked the same state and wait at it: then they race to commit
    with hold():
        ledger.locked = counted  # type: ignore[method-assign]
        threads = [threading.Thread(target=go, args=(d,)) for d in (a, b)]
        for t in threads:
            t.start()
        assert waiting.acquire(timeout=120) and waiting.acquire(timeout=120)
    for t in threads:
        t.join()
    outcomes = sorted(type(v).__name__ for v in results.values())
    assert outcomes == ["Outcome", "Refused"], results
    loser = next(v for v in results.values() if isinstance(v, Refused))
    assert "retry" in (loser.hint or "")
    entries = r.reg.ledger.entries()  # parses the whole chain: no gap, no fork
    assert [e["outcome"] for e in entries if e["action"] == "promote"] == ["done", "refused"]
    assert verify_registry(r.reg)[1] == []


def test_write_once_versions_and_the_cli(folder_release, monkeypatch, capsys):
    r = folder_release
    a = r.model("a", ["x1", "x2"])
    folder = r.root / "releases" / "a"
    code, out, err = cli(r, capsys, "register", "--registry", "registry", "--model", "churn", str(folder))
    assert code == 0 and out.strip() == a and "already registered" in err
    (folder / "model.sig").write_text((folder / "model.sig").read_text().replace('"', '"', 1) + " ")
    code, out, err = cli(r, capsys, "register", "--registry", "registry", "--model", "churn", str(folder))
    assert code == 2 and "already registered with other signature" in err
    code, out, err = cli(
        r, capsys, "promote", "--model", "churn", "--digest", a, "--to", "staging", "--out", "deploy.json"
    )
    assert code == 2 and "pass --actor" in err
    monkeypatch.setenv("GITHUB_ACTOR", "ci-bot")
    code, out, err = cli(
        r, capsys, "promote", "--model", "churn", "--digest", a, "--to", "staging", "--out", "deploy.json"
    )
    assert code == 0, err
    assert json.loads(out) == json.loads((r.root / "deploy.json").read_text())
    assert json.loads(out)["digest"] == a and "promoted in staging" in err
    code, out, err = cli(r, capsys, "promote", "--model", "churn", "--digest", a, "--to", "production")
    assert code == 1 and err.startswith("REFUSED") and "ci-bot may not promote" in err
    code, out, err = cli(r, capsys, "promote", "--model", "churn", "--digest", "sha256:12", "--to", "staging")
    assert code == 2 and "is not a digest" in err
    code, out, err = cli(r, capsys, "rollback", "--model", "churn", "--env", "staging")
    assert code == 1 and "no earlier version that still verifies" in err
    code, out, err = cli(r, capsys, "audit", "show")
    assert code == 0 and out.count("\n") == 4 and "rollback refused" in out


def test_mlflow_aliases_moved_by_hand_and_changed_artifacts_are_caught(mlflow_release):
    r = mlflow_release
    a = r.model("a", ["x1", "x2"])
    r.model("b", ["x1", "x2", "x3"])
    r.promote(a, "staging", HOUR)
    http = r.reg.store.http  # what someone with MLflow access could do by hand
    got = http.request(
        "GET", "mlflow/registered-models/alias", params={"name": r.name, "alias": "staging"}
    ).json()
    assert got["model_version"]["tags"][0]["value"] == a  # environments are aliases on digest-tagged versions
    other = "2" if got["model_version"]["version"] == "1" else "1"
    http.request(
        "POST",
        "mlflow/registered-models/alias",
        json_body={"name": r.name, "alias": "staging", "version": other},
    )
    with pytest.raises(Tampered, match="staging pointer of .* does not match the audit log"):
        r.promote(a, "canary", 3 * HOUR)
    v = got["model_version"]
    http.request(
        "POST",
        "mlflow/registered-models/alias",
        json_body={"name": r.name, "alias": "staging", "version": v["version"]},
    )
    r.promote(a, "canary", 3 * HOUR)
    root = v["source"].removeprefix("mlflow-artifacts:/")
    http.request("PUT", f"mlflow-artifacts/artifacts/{root}/files/model.skops", body=b"not the model")
    fresh = open_registry(r.pol.promotion.registry, r.pol.promotion.ledger)  # no cached download
    assert any("files changed after it was registered: model.skops" in p for p in verify_registry(fresh)[1])


def shifted(seed: int, shift: float = 0.0, flip: bool = False) -> pa.Table:
    """A production window: the same world, moved features, or a changed relation between features and label."""
    t = data(1500, seed)
    x1 = pa.compute.add(t.column("x1"), shift)
    label = pa.compute.subtract(1, t.column("label")) if flip else t.column("label")
    return t.set_column(0, "x1", x1).set_column(3, "label", label)


def test_watch_runs_the_served_model_and_rolls_back_on_drift(folder_release, capsys):
    r = folder_release
    a, b = r.model("a", ["x1", "x2"]), r.model("b", ["x1", "x2", "x3"])
    r.promote(a, "staging", HOUR)
    promote(r.reg, r.pol, r.name, b, "staging", actor="alice")  # now: b serves, a before it
    pq.write_table(shifted(11, shift=2.0).drop(["label"]), r.root / "window.parquet")
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
    )
    report = json.loads(out)
    assert code == 1 and report["recommendation"] == "rollback" and report["digest"] == b
    assert report["drift"]["x1"]["psi"] > 1 and report["drift"]["x2"]["psi"] < 0.25
    assert any(t.startswith("x1: PSI") for t in report["triggers"])
    assert any(t.startswith("the model's outputs: PSI") for t in report["triggers"])  # b itself ran
    assert report["rollback"]["digest"] == a and f"rolled staging back to {a}" in err
    assert state(r.reg)[1][(r.name, "staging")].digest == a
    assert verify_registry(r.reg)[1] == []


def test_watch_on_logged_predictions_keeps_or_recommends(tmp_path, monkeypatch, capsys):
    """Prediction columns (as a serving log holds them): the same world keeps; a changed world does not."""
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    monkeypatch.chdir(tmp_path)
    train = data(2000, 2).to_pandas()
    model = LogisticRegression().fit(train[["x1", "x2"]], train["label"])

    def with_scores(t: pa.Table) -> pa.Table:
        score = model.predict_proba(t.select(["x1", "x2"]).to_pandas())[:, 1]
        return t.append_column("score", pa.array(score))

    pq.write_table(with_scores(data(2000, 1)), tmp_path / "eval.parquet")
    key, pub = keypair(tmp_path)
    policy = write_policy(
        tmp_path / "gates.yml",
        {
            "version": 1,
            "task": "binary",
            "positive_label": 1,
            "data": {"eval": {"path": "eval.parquet"}},
            "columns": {"label": "label", "candidate": {"score": "score"}, "features": ["x1", "x2", "x3"]},
            "settings": {"bootstrap": {"replicates": 300}},
            "gates": [{"type": "accuracy", "metrics": [{"metric": "roc_auc", "op": ">=", "value": 0.7}]}],
            "promotion": {
                "registry": "registry",
                "environments": [{"name": "production", "signers": [{"key": pub.name}]}],
                "watch": {
                    "max_psi": 0.25,
                    "max_prediction_psi": 0.25,
                    "metrics": [{"metric": "roc_auc", "op": ">=", "value": 0.7}],
                    "min_rows": 300,
                },
            },
        },
    )
    (tmp_path / "model").mkdir()
    sio.dump(model, tmp_path / "model" / "model.skops")
    assert (
        run(policy, tmp_path / "out", model_paths={"candidate": tmp_path / "model"}).decision.verdict
        == "PROMOTE"
    )
    sign(tmp_path / "model", PrivateKey.load(key), decision=tmp_path / "out" / "decision.json")
    pol = policy_mod.load(policy)
    reg = open_registry(tmp_path / "registry")
    version, _ = register(
        reg,
        "churn",
        tmp_path / "model",
        tmp_path / "model" / "model.sig",
        tmp_path / "model" / "model.decision.sig",
        actor="ci-bot",
    )
    promote(reg, pol, "churn", version.digest, "production", actor="alice")

    def watch_(window: pa.Table) -> tuple[int, dict]:
        pq.write_table(with_scores(window), tmp_path / "window.parquet")
        code, out, _ = cli_main_(
            monkeypatch,
            capsys,
            "watch",
            "--model",
            "churn",
            "--env",
            "production",
            "--data",
            "window.parquet",
        )
        return code, json.loads(out)

    code, report = watch_(shifted(21))
    assert code == 0 and report["recommendation"] == "keep" and report["labelled_rows"] == 1500
    assert report["metrics"][0]["status"] == "PASS" and report["prediction_psi"] < 0.05
    code, report = watch_(shifted(22, flip=True))  # same inputs, the label now means the opposite
    assert code == 1 and report["drift"]["x1"]["psi"] < 0.05 and report["prediction_psi"] < 0.05
    assert report["metrics"][0]["status"] == "FAIL" and report["triggers"] == [
        t for t in report["triggers"] if t.startswith("roc_auc")
    ]
    unlabelled = shifted(23).drop(["label"])
    code, report = watch_(unlabelled)
    assert code == 0 and report["labelled_rows"] == 0 and report["metrics"] == []
    (tmp_path / "eval.parquet").write_bytes((tmp_path / "eval.parquet").read_bytes() + b" ")
    code, _, err = cli_main_(
        monkeypatch, capsys, "watch", "--model", "churn", "--env", "production", "--data", "w.parquet"
    )
    assert code == 2 and "not the one the decision was made on" in err


def test_team_approvers_are_confirmed_by_the_platform():
    """ "@org/team" approvers: GitHub's and GitLab's APIs (fakes on loopback, requests checked against the
    platforms' OpenAPI descriptions) confirm membership; whatever cannot be confirmed does not allow."""
    from mlops_gates.platforms.membership import allowed
    from tests.fakes.api import FakeGitHub, FakeGitLab
    from tests.fakes.openapi import available, validate

    approvers = ("alice", "@acme/release-managers")
    with FakeGitHub({"pat": "release-bot", "ghs": "github-actions[bot]"}, {}) as gh:
        gh.teams["acme/release-managers"] = {"dave"}
        env = {"GITHUB_ACTIONS": "true", "GITHUB_API_URL": gh.url, "GITHUB_TOKEN": "pat"}
        assert allowed("Alice", approvers, env) == (True, "Alice is one of the approvers")
        assert allowed("dave", approvers, env) == (True, "dave is a member of @acme/release-managers")
        ok, why = allowed("mallory", approvers, env)
        assert not ok and "not one of the approvers" in why
        ok, why = allowed("dave", approvers, {**env, "GITHUB_TOKEN": "ghs"})  # the job's own token
        assert (
            not ok
            and "could not be checked: GET /orgs/acme/teams/release-managers/memberships/dave: HTTP 403"
            in why
        )
        assert "pat" not in why and "ghs" not in why
        ok, why = allowed("dave", approvers, {k: v for k, v in env.items() if k != "GITHUB_TOKEN"})
        assert not ok and "$GITHUB_TOKEN is not set" in why
        assert validate("github", gh.calls, bodiless=True) == len(gh.calls) >= 3 or not available("github")
    with FakeGitLab({"glpat": 1}) as gl:
        gl.users.update(erin=7, mallory=8, erinson=9)
        gl.groups["acme/ml/release"] = {7, 9}
        env = {"GITLAB_CI": "true", "CI_API_V4_URL": f"{gl.url}/api/v4", "GITLAB_TOKEN": "glpat"}
        approvers = ("@acme/ml/release",)
        assert allowed("erin", approvers, env) == (True, "erin is a member of @acme/ml/release")
        assert not allowed("mallory", approvers, env)[0] and not allowed("erins", approvers, env)[0]
        assert validate("gitlab", gl.calls, bodiless=True) == len(gl.calls) == 3
    ok, why = allowed("dave", ("@acme/release-managers",), {})  # on a laptop
    assert not ok and "only be checked in CI" in why


def test_a_held_lock_makes_another_promotion_wait_then_refuse(tmp_path):
    """The ledger's lock is held by another process: a promotion waits, then says the registry is busy (exit
    2); once the holder is gone (here: killed, as a crashed CI job would be), the lock is free again."""
    import sys

    from mlops_gates.errors import Busy
    from mlops_gates.promotion.ledger import Ledger

    ledger = Ledger(tmp_path / "reg")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from mlops_gates.promotion.ledger import Ledger\n"
            f"with Ledger(Path({str(tmp_path / 'reg')!r})).locked():\n"
            "    print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(Busy, match="another promotion has held the registry") as info,
            ledger.locked(timeout=0.3),
        ):
            pass
        assert info.value.exit_code == 2
    finally:
        holder.kill()
        holder.wait()
    with ledger.locked(timeout=5):
        pass
