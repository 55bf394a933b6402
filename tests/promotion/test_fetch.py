"""`mlops-gates fetch`: the version an environment serves reaches the destination only after it verifies, on
both registries (a folder, a real MLflow server); every refusal, a pointer moved mid-fetch, a copy that fails
halfway and a registry that is down leave the destination empty."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from mlops_gates import policy as policy_mod
from mlops_gates.digest import folder_files, root_digest
from mlops_gates.errors import GateError, Refused, Tampered
from mlops_gates.promotion import fetch as fetch_mod
from mlops_gates.promotion.audit import replay, stamp
from mlops_gates.promotion.fetch import STAGING, fetch, parse_uri
from mlops_gates.promotion.promote import rollback
from tests.promotion.release import HOUR, ROOT, Release, cli


def served(r: Release) -> tuple[str, str]:
    """a in production, b a 10% canary there."""
    a = r.model("a", ["x1", "x2"])
    b = r.model("b", ["x1", "x2", "x3"])
    r.promote(a, "staging", 1 * HOUR)
    r.promote(a, "canary", 3 * HOUR)
    r.promote(a, "production", 4 * HOUR)
    r.promote(b, "staging", 5 * HOUR)
    r.promote(b, "canary", 7 * HOUR)
    r.promote(b, "production", 8 * HOUR, traffic=10)
    return a, b


def empty(dest: Path) -> bool:
    return not dest.exists() or not any(dest.iterdir())


def test_fetch_writes_what_the_environment_serves_once_it_verifies(release, capsys):
    r = release
    a, b = served(r)
    got = fetch(r.reg, r.pol, r.name, "production", r.root / "serve")
    assert (got.digest, got.role) == (a, "stable")
    assert root_digest(folder_files(r.root / "serve")) == a  # exactly the files registered
    assert sorted(p.name for p in (r.root / "serve").iterdir()) == ["features.json", "model.skops"]
    canary = fetch(r.reg, r.pol, r.name, "production", r.root / "canary", digest=b)
    assert (canary.digest, canary.role) == (b, "canary")
    assert any("decision PROMOTE under the current policy" in c for c in got.checks)

    # as a storage initializer calls it: URI and destination
    code, out, err = cli(r, capsys, "fetch", f"mlops-gates://{r.name}/production", "init", "--env", "staging")
    assert code == 2 and "either URI DEST" in err  # options and a URI do not mix
    r.mp.setenv("MLOPS_GATES_REGISTRY", r.pol.promotion.registry)
    r.mp.setenv("MLOPS_GATES_LEDGER", str(r.pol.promotion.ledger))
    r.mp.setenv("MLOPS_GATES_POLICY", str(r.policy))
    code, out, err = cli(r, capsys, "fetch", f"mlops-gates://{r.name}/production@{b}", "init")
    assert code == 0, err
    assert json.loads(out)["digest"] == b and (r.root / "init" / "model.skops").is_file()
    assert "verified and written" in err

    code, out, err = cli(
        r, capsys, "fetch", "--model", r.name, "--env", "staging", "--dest", "elsewhere", "--digest", a
    )
    assert code == 1 and "staging does not serve" in err and empty(r.root / "elsewhere"), err


def test_refusals_and_tampering_leave_the_destination_empty(folder_release):
    r = folder_release
    a, b = served(r)
    dest = r.root / "serve"

    def refused(exc: type[GateError], env: str, model: str = r.name, **kw) -> str:
        with pytest.raises(exc) as info:
            fetch(r.reg, r.pol, model, env, dest, **kw)
        assert empty(dest), list(dest.iterdir())
        return info.value.message

    assert "production serves no version of fraud" in refused(Refused, "production", "fraud")
    assert "no environment named" in refused(GateError, "nowhere")

    weights = Path(r.reg.store.version(r.name, a).files) / "model.skops"
    blob = weights.read_bytes()
    weights.write_bytes(blob + b"\0")
    assert "files changed after it was registered" in refused(Tampered, "production")
    weights.write_bytes(blob)

    log = r.root / "registry" / "audit.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:-1]))  # the last entry (b's canary step) cut off
    assert "audit log is broken" in refused(Tampered, "production")
    log.write_text("".join(lines))

    text = r.policy.read_text()
    for edit, why in (
        (text.replace("secp256r1.pub.pem", "other/secp256r1.pub.pem"), "no signer that production trusts"),
        (text.replace("value: 0.68", "value: 0.69"), "not the current"),  # a policy changed since
    ):
        r.policy.write_text(edit)
        r.pol = policy_mod.load(r.policy)
        assert why in refused(Refused, "production")
    r.policy.write_text(text)
    r.pol = policy_mod.load(r.policy)

    # a log written by something other than `promote` (its chain intact): stale evidence is still refused
    entries = r.reg.ledger.entries()
    placed = next(e for e in entries if e["action"] == "promote" and (e["to"], e["digest"]) == ("staging", a))
    late = {k: v for k, v in placed.items() if k not in ("$schema", "seq", "prev", "hash")}
    late.update(time=stamp(r.decided + 30 * 24 * HOUR), replaced=b)
    entries.append(r.reg.ledger.append(late, entries))
    r.reg.store.set_pointer(r.name, "staging", replay(entries)[(r.name, "staging")])
    assert "30.0 days old when it was promoted; the policy accepts 7" in refused(Refused, "staging")

    # the pointer moves while the copy is checked: nothing is written, the caller retries
    real = fetch_mod.verify_version

    def racing(version, env):
        out = real(version, env)
        rollback(r.reg, r.pol, r.name, "production", actor="alice", now=r.decided + 10 * HOUR)
        return out

    r.mp.setattr(fetch_mod, "verify_version", racing)
    assert "moved while fetching" in refused(Refused, "production", digest=b)
    r.mp.setattr(fetch_mod, "verify_version", real)
    assert "does not serve" in refused(Refused, "production", digest=b)  # the canary was withdrawn

    # a copy that fails halfway (a full disk, a dropped connection)
    copied = []
    original = fetch_mod.copy_hashing

    def failing(src: Path, dst: Path) -> str:
        if copied:
            raise OSError(28, "No space left on device")
        copied.append(src)
        return original(src, dst)

    r.mp.setattr(fetch_mod, "copy_hashing", failing)
    with pytest.raises(OSError, match="No space left"):
        fetch(r.reg, r.pol, r.name, "production", dest)
    assert empty(dest) and copied
    r.mp.setattr(fetch_mod, "copy_hashing", original)

    # a destination that holds anything is refused and left as it was; a killed fetch's staging is cleared
    (dest / "old.bin").write_text("x")
    with pytest.raises(GateError, match="not empty"):
        fetch(r.reg, r.pol, r.name, "production", dest)
    assert [p.name for p in dest.iterdir()] == ["old.bin"]
    (dest / "old.bin").unlink()
    (dest / f"{STAGING}killed" / "files").mkdir(parents=True)
    got = fetch(r.reg, r.pol, r.name, "production", dest)
    assert got.digest == a and sorted(p.name for p in dest.iterdir()) == ["features.json", "model.skops"]


def test_a_registry_that_is_down_leaves_the_destination_empty(folder_release, capsys):
    r = folder_release
    served(r)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out, err = cli(
        r,
        capsys,
        "fetch",
        "--model",
        r.name,
        "--env",
        "production",
        "--dest",
        "serve",
        "--registry",
        f"mlflow+http://127.0.0.1:{port}",
        "--ledger",
        "registry",
    )
    assert code == 5 and empty(r.root / "serve"), err


@pytest.mark.parametrize(
    "uri",
    [
        "mlops-gates://../production",
        "mlops-gates://churn/../../etc",
        "mlops-gates://churn/production@sha256:12",
        "mlops-gates://churn",
        "s3://bucket/churn",
        "mlops-gates://churn/production@sha256:" + "a" * 64 + "/../x",
    ],
)
def test_hostile_uris_are_refused(uri):
    with pytest.raises(GateError):
        parse_uri(uri)


def test_a_uri_names_the_model_the_environment_and_perhaps_a_digest():
    digest = "sha256:" + "a" * 64
    assert parse_uri("mlops-gates://churn/production") == ("churn", "production", None)
    assert parse_uri(f"mlops-gates://churn/production@{digest}") == ("churn", "production", digest)


def test_the_kubernetes_examples_fetch_as_written_and_refuse_an_unverified_model(folder_release):
    """examples/kubernetes/kserve-fetch.yaml run as KServe and the kubelet would: the storage container's
    command with the InferenceService's storageUri and KServe's destination appended, its environment, and
    its mounts mapped to this test's folders; then the init container of the plain Deployment. An untrusted
    version makes both exit 1 with nothing written: the pod never starts serving it."""
    import subprocess
    import sys

    import yaml

    r = folder_release
    a, _ = served(r)
    docs = {
        d["kind"]: d for d in yaml.safe_load_all((ROOT / "examples/kubernetes/kserve-fetch.yaml").read_text())
    }
    mounts = {"/etc/mlops-gates": str(r.root), "/var/lib/mlops-gates/registry": str(r.root / "registry")}

    def mapped(text: str) -> str:
        for inside, here in mounts.items():
            text = text.replace(inside, here)
        return text

    container = docs["ClusterStorageContainer"]["spec"]["container"]
    uri = docs["InferenceService"]["spec"]["predictor"]["model"]["storageUri"]
    assert any(
        uri.startswith(f["prefix"]) for f in docs["ClusterStorageContainer"]["spec"]["supportedUriFormats"]
    )
    env = {e["name"]: mapped(e["value"]) for e in container["env"]}
    init = docs["Deployment"]["spec"]["template"]["spec"]["initContainers"][0]
    exe = str(Path(sys.executable).parent / "mlops-gates")

    def run(argv: list[str], dest: Path) -> subprocess.CompletedProcess[str]:
        argv = [exe if a == "mlops-gates" else mapped(a) for a in argv]
        argv = [str(dest) if a == "/models" else a for a in argv]
        return subprocess.run(argv, cwd=r.root, env={**os.environ, **env}, capture_output=True, text=True)

    ok = run([*container["command"], uri, str(r.root / "mnt-models")], r.root / "mnt-models")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["digest"] == a and (r.root / "mnt-models" / "model.skops").is_file()
    assert run(init["command"], r.root / "models").returncode == 0

    text = r.policy.read_text()  # production no longer trusts the key that signed what it serves
    r.policy.write_text(text.replace("secp256r1.pub.pem", "other/secp256r1.pub.pem"))
    for argv, dest in (
        ([*container["command"], uri, str(r.root / "refused")], r.root / "refused"),
        (init["command"], r.root / "refused-init"),
    ):
        no = run(argv, dest)
        assert no.returncode == 1 and "no signer that production trusts" in no.stderr, no.stderr
        assert empty(dest)
