"""Training lineage end to end: a model trained here is attested (SLSA provenance v1: code, data, config,
environment), gated with the attestation linked, signed, registered and promoted; `verify
--require-provenance` follows model -> training -> data, `audit lineage` prints the whole chain, and every
mismatch is refused."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

from mlops_gates.evaluation import run
from mlops_gates.promotion.audit import parse_time
from mlops_gates.promotion.promote import register
from mlops_gates.signing.envelope import PrivateKey
from mlops_gates.signing.sign import sign
from tests.promotion.release import HOUR, Release, cli

REPO, COMMIT = "https://github.com/acme/models", "3f1c2a9e8b7d6c5f4e3d2c1b0a9f8e7d6c5b4a39"


def attest(r: Release, capsys, folder: Path, *extra: str) -> tuple[int, Path]:
    out = folder.parent / f"{folder.name}.training.sig"
    code, _, err = cli(
        r,
        capsys,
        "attest-training",
        str(folder),
        "--data",
        "train.parquet",
        "--config",
        "train.json",
        "--repository",
        REPO,
        "--commit",
        COMMIT,
        "--key",
        str(r.key),
        *extra,
    )
    assert code == 0, err
    return code, out


def verify_with(r: Release, capsys, cand: Path, pub: Path, training: Path) -> tuple[int, str, str]:
    """`verify --require-provenance`, as a user runs it."""
    sig = str(cand / "model.sig")
    return cli(
        r,
        capsys,
        "verify",
        str(cand),
        "--signature",
        sig,
        "--key",
        str(pub),
        "--require-provenance",
        str(training),
    )


def reshaped(att: Path, edits: list[tuple[tuple, object]]) -> list[Path]:
    """Copies of a training attestation with one field of its statement changed each (the signature kept)."""
    bundle = json.loads(att.read_text())
    out = []
    for i, (path, value) in enumerate(edits):
        statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
        node = statement
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        payload = base64.b64encode(json.dumps(statement).encode()).decode()
        copy = att.with_name(f"hostile-{i}.training.sig")
        copy.write_text(
            json.dumps({**bundle, "dsseEnvelope": {**bundle["dsseEnvelope"], "payload": payload}})
        )
        out.append(copy)
    return out


def trained(r: Release, folder: str, features: list[str]) -> Path:
    """A model trained here on r.train, in r.root / folder (the policy's candidate is "candidate")."""
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    cand = r.root / folder
    shutil.rmtree(cand, ignore_errors=True)
    cand.mkdir()
    sio.dump(LogisticRegression().fit(r.train[features], r.train["label"]), cand / "model.skops")
    (cand / "features.json").write_text(json.dumps(features))
    return cand


def test_training_lineage_from_data_to_production(folder_release, capsys):
    r = folder_release
    r.train.to_parquet(r.root / "train.parquet")
    (r.root / "train.json").write_text('{"C": 1.0, "features": ["x1", "x2"]}')
    cand = trained(r, "candidate", ["x1", "x2"])
    _, att = attest(r, capsys, cand)
    statement = json.loads(base64.b64decode(json.loads(att.read_text())["dsseEnvelope"]["payload"]))
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert deps[0] == {"uri": f"git+{REPO}@{COMMIT}", "digest": {"gitCommit": COMMIT}}
    assert [d["annotations"]["role"] for d in deps[1:]] == ["training-data", "pip-freeze"]

    outcome = run(r.policy, r.root / "out", provenance=att)
    linked = outcome.record["inputs"]["models"]["candidate"]["provenance"]
    assert linked["commit"] == COMMIT and linked["data"][0]["name"] == "train.parquet"
    # a file of the right kind but the wrong shape is an error naming it, never a crash or a record out of shape
    build = ("predicate", "buildDefinition")
    hostile = reshaped(
        att,
        [
            ((*build, "externalParameters", "repository"), 5),
            ((*build, "resolvedDependencies", 1, "digest", "sha256"), "zz"),
            ((*build, "internalParameters", "environment"), {"kind": "x" * 10**5}),
        ],
    )
    for shaped in hostile:
        code, _, err = cli(
            r, capsys, "evaluate", "--policy", str(r.policy), "--out", "o", "--provenance", str(shaped)
        )
        assert code == 2 and "not what attest-training writes" in err and "Traceback" not in err, err
    sign(cand, PrivateKey.load(r.key), decision=r.root / "out" / "decision.json")
    pub = next(r.root.glob("*.pub.pem"))
    for shaped in hostile:  # and with the statement changed, its signature no longer holds
        code, _, err = verify_with(r, capsys, cand, pub, shaped)
        assert code == 1 and "FAILED" in err, err
    code, out, err = verify_with(r, capsys, cand, pub, att)
    assert code == 0, err
    assert f"trained from {REPO} at {COMMIT}" in out and "training-data train.parquet sha256:" in out
    assert "the one the decision linked" in out

    # what does not belong to this model, this decision or this signer is refused
    other = trained(r, "foreign-model", ["x1", "x2", "x3"])
    _, foreign = attest(r, capsys, other)
    code, out, err = verify_with(r, capsys, cand, pub, foreign)
    assert code == 1 and "provenance subject" in err, err
    again = att.with_name("again.training.sig")
    attest(r, capsys, cand, "--out", str(again))  # the same training, attested again: not the one linked
    code, out, err = verify_with(r, capsys, cand, pub, again)
    assert code == 1 and "the decision linked another training attestation" in err
    code, _, err = cli(
        r, capsys, "evaluate", "--policy", str(r.policy), "--out", "out2", "--provenance", str(foreign)
    )
    assert code == 2 and "not the candidate" in err

    version, _ = register(
        r.reg, r.name, cand, cand / "model.sig", cand / "model.decision.sig", actor="ci-bot"
    )
    r.decided = parse_time(outcome.record["created_at"])
    r.promote(version.digest, "staging", HOUR, actor="ci-bot")
    entry = r.reg.ledger.entries()[-1]
    assert entry["action"] == "promote" and entry["provenance"] == linked["digest"]
    code, out, err = cli(r, capsys, "audit", "lineage", r.name, "--registry", "registry")
    assert code == 0, err
    assert f"trained     from {REPO} at {COMMIT}" in out and "data      train.parquet" in out
    assert "promote     staging at" in out and "gated       PROMOTE" in out
    code, out, _ = cli(r, capsys, "audit", "lineage", r.name, "--registry", "registry", "--json")
    (rec,) = [json.loads(line) for line in out.splitlines()]
    assert rec["training"]["digest"] == linked["digest"] and rec["moves"][0]["to"] == "staging"
    code, _, err = cli(r, capsys, "audit", "lineage", "fraud", "--registry", "registry")
    assert code == 2 and "no version of fraud" in err


ASSETS = Path(__file__).resolve().parents[1] / "assets" / "openlineage"


def spec_problems(event: dict) -> list[str]:
    """The event against OpenLineage's published spec (2-0-2) and each facet against its own schema."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    schemas = {p.stem: json.loads(p.read_text()) for p in ASSETS.glob("*.json")}
    registry = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas.values())
    problems = [
        e.message for e in Draft202012Validator(schemas["OpenLineage"], registry=registry).iter_errors(event)
    ]
    facets = [*event["run"]["facets"].items(), *event["job"]["facets"].items()]
    facets += [f for d in event["inputs"] + event["outputs"] for f in d.get("facets", {}).items()]
    names = {"version": "DatasetVersionDatasetFacet", "sourceCodeLocation": "SourceCodeLocationJobFacet"}
    names["errorMessage"] = "ErrorMessageRunFacet"
    for key, facet in facets:
        if key not in names:  # a facet the client adds itself (tags)
            continue
        schema = schemas[names[key]]
        sub = {"$ref": f"{schema['$id']}#/$defs/{names[key]}"}
        problems += [
            f"{key}: {e.message}" for e in Draft202012Validator(sub, registry=registry).iter_errors(facet)
        ]
    return problems


def test_openlineage_events_for_training_evaluation_and_promotion(folder_release, capsys, tmp_path):
    """With OPENLINEAGE_CONFIG naming a file transport, the official client writes one run event per step,
    each valid against OpenLineage's spec; over HTTP (a catalogue on loopback) too; a catalogue that is down
    costs a warning, never the command."""
    import http.server
    import threading

    r = folder_release
    events = tmp_path / "lineage.jsonl"
    (tmp_path / "ol-file.yml").write_text(
        f"transport:\n  type: file\n  log_file_path: {events}\n  append: true\n"
    )
    r.mp.setenv("OPENLINEAGE_CONFIG", str(tmp_path / "ol-file.yml"))
    r.train.to_parquet(r.root / "train.parquet")
    (r.root / "train.json").write_text("{}")
    cand = trained(r, "candidate", ["x1", "x2"])
    _, att = attest(r, capsys, cand)
    code, _, err = cli(
        r, capsys, "evaluate", "--policy", str(r.policy), "--out", "out", "--provenance", str(att)
    )
    assert code == 0, err
    sign(cand, PrivateKey.load(r.key), decision=r.root / "out" / "decision.json")
    version, _ = register(
        r.reg, r.name, cand, cand / "model.sig", cand / "model.decision.sig", actor="ci-bot"
    )
    for to, want in (("staging", 0), ("production", 1)):  # production: environments cannot be skipped
        promote = ["promote", "--model", r.name, "--digest", version.digest, "--to", to, "--actor", "alice"]
        code, _, err = cli(r, capsys, *promote)
        assert code == want, err

    sent = [json.loads(line) for line in events.read_text().splitlines()]
    for e in sent:
        assert spec_problems(e) == [], (e["job"]["name"], spec_problems(e))
    jobs = [(e["job"]["name"], e["eventType"]) for e in sent]
    assert jobs == [
        ("train/candidate", "COMPLETE"),
        ("evaluate/gates", "COMPLETE"),
        (f"promote/{r.name}/staging", "COMPLETE"),
        (f"promote/{r.name}/production", "FAIL"),
    ]
    train, evaluate, promoted, refused = sent
    assert train["job"]["facets"]["sourceCodeLocation"]["version"] == COMMIT
    assert train["inputs"][0]["name"] == str((r.root / "train.parquet").resolve())
    model_out = train["outputs"][0]
    assert (
        model_out["name"] == "candidate"
        and model_out["facets"]["version"]["datasetVersion"] == version.digest
    )
    assert {d["name"] for d in evaluate["inputs"]} >= {"candidate", str((r.root / "eval.parquet").resolve())}
    assert promoted["outputs"][0]["name"] == f"{r.name}/staging"
    assert "cannot be skipped" in refused["run"]["facets"]["errorMessage"]["message"]

    # over HTTP, to a catalogue on loopback; then with the catalogue down
    received: list[tuple[str, dict]] = []

    class Catalogue(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, json.loads(body)))
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Catalogue)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    r.mp.delenv("OPENLINEAGE_CONFIG")
    r.mp.setenv("OPENLINEAGE_URL", f"http://127.0.0.1:{server.server_address[1]}")
    code, _, err = cli(r, capsys, "rollback", "--model", r.name, "--env", "staging", "--actor", "alice")
    assert code == 1  # nothing earlier to go back to: refused, and a refused rollback sends nothing
    code, _, err = cli(r, capsys, "evaluate", "--policy", str(r.policy), "--out", "out3")
    assert code == 0, err
    server.shutdown()
    server.server_close()
    ((path, event),) = received
    assert path == "/api/v1/lineage" and event["job"]["name"] == "evaluate/gates" and not spec_problems(event)
    code, _, err = cli(r, capsys, "evaluate", "--policy", str(r.policy), "--out", "out4")
    assert code == 0 and "warning: the OpenLineage event for evaluate/gates was not delivered" in err


def test_lineage_keeps_each_value_from_a_file_on_its_line_and_survives_odd_shapes():
    """The attestations `audit lineage` reads are shown, not verified: a value with a line break cannot fake a
    promotion line, and a decision or link of another shape shows as nothing rather than crashing."""
    from mlops_gates.promotion.lineage import _decision, _training, render

    d = "sha256:" + "a" * 64
    link = {
        "digest": d,
        "repository": "https://x\n  promote     production at 2099-01-01T00:00:00Z by mallory",
        "commit": COMMIT,
        "data": [{"name": "train\n  gated       PROMOTE", "digest": d}],
        "config": None,
        "environment": {"kind": "lock", "name": "uv.lock", "digest": d},
    }
    pred = {"models": {"candidate": {"provenance": link}}, "decision": "HOLD", "data": "odd", "policy": 5}
    record = {
        "model": "churn",
        "digest": d,
        "registered": {"time": "t", "actor": None, "seq": 1},
        "moves": [],
    }
    text = render([{**record, "training": _training(pred), "decision": _decision(pred)}])
    assert not any(line.lstrip().startswith(("promote", "gated       PROMOTE")) for line in text.splitlines())
    assert "mallory" in text and text.count("\n") == 5  # model, registered, trained, data, env, gated
    assert _training({"models": {"candidate": {"provenance": {**link, "commit": 5}}}}) is None
    assert _training({"models": "odd"}) is None and _decision(None) is None
