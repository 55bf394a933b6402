"""Threat: an input nobody thought of crashes the gate, or slips through it as PROMOTE.

Property-based (Hypothesis, derandomised so CI is repeatable): generated policies, data files, signature bundles
and registry files go through the command line as a user would run it. Every outcome is exit 0, 1 or 2 with a
message and no traceback; and PROMOTE (exit 0) happens only for input an independent check calls valid.
"""

from __future__ import annotations

import copy
import json
import math
import os

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_gates.signing.envelope import PrivateKey
from mlops_gates.signing.sign import sign
from tests.conftest import binary_frame, binary_policy, cli_main, write_parquet, write_policy
from tests.signing.test_signing import keypair

FUZZ = settings(
    max_examples=int(os.environ.get("MLOPS_GATES_FUZZ_EXAMPLES", "200")),
    deadline=None,
    derandomize=os.environ.get("MLOPS_GATES_FUZZ_RANDOM") is None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
json_like = st.recursive(
    scalars,
    lambda kids: st.one_of(
        st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=12,
)


def _run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli_main(monkeypatch, *args)
    out, err = capsys.readouterr()
    assert code in (0, 1, 2), (code, out, err)
    assert "Traceback" not in err and "unexpected error" not in err, err
    if code == 2:
        assert err.strip(), "an exit 2 says why"
    return code, out, err


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _replace(node, path, value):
    node = copy.deepcopy(node)
    if not path:
        return value
    target = node
    for k in path[:-1]:
        target = target[k]
    target[path[-1]] = value
    return node


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    frame = binary_frame(n=400)
    write_parquet(folder / "eval.parquet", frame)
    gates = [
        {"type": "accuracy", "metrics": [{"metric": "accuracy", "op": ">=", "value": 0.5}]},
        {
            "type": "fairness",
            "metrics": [{"metric": "demographic_parity_difference", "op": "<=", "value": 0.9}],
        },
        {"type": "regression", "metrics": [{"metric": "accuracy", "margin": {"absolute": 0.2}}]},
    ]
    policy = binary_policy(gates=gates, settings={"bootstrap": {"replicates": 50, "seed": 1}})
    return folder, policy, frame


@FUZZ
@given(data=st.data())
def test_mutated_policies(case, monkeypatch, capsys, data):
    folder, policy, _ = case
    path = data.draw(st.sampled_from(list(_paths(policy))))
    mutated = _replace(policy, path, data.draw(json_like))
    f = folder / "mutated.yml"
    f.write_text(yaml.safe_dump(mutated, allow_unicode=True))  # PyYAML writes .nan and .inf, as a user could
    code, out, err = _run(monkeypatch, capsys, "evaluate", "--policy", str(f), "--out", str(folder / "o"))
    if code == 0:  # PROMOTE only for a policy that stands on its own
        assert _run(monkeypatch, capsys, "policy", "check", str(f))[0] == 0
        assert not _has_nonfinite(mutated)


def _has_nonfinite(node) -> bool:
    if isinstance(node, float):
        return not math.isfinite(node)
    if isinstance(node, dict):
        return any(_has_nonfinite(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_nonfinite(v) for v in node)
    return False


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(list("{}[]:,-? \n\t\"'!&*|>#%@`abc01.")), max_size=200))
def test_arbitrary_yaml_text(case, monkeypatch, capsys, text):
    folder, _, _ = case
    f = folder / "raw.yml"
    f.write_text(text)
    code, _, _ = _run(monkeypatch, capsys, "policy", "check", str(f))
    assert code == 2


column_values = st.one_of(
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=30),
    st.lists(st.one_of(st.none(), st.floats(0, 1)), min_size=1, max_size=30),
    st.lists(st.sampled_from(["yes", "no", "maybe", "", None]), min_size=1, max_size=30),
    st.lists(st.integers(-3, 3), min_size=1, max_size=30),
    st.lists(st.booleans(), min_size=1, max_size=30),
    st.lists(st.lists(st.integers(0, 2), max_size=2), min_size=1, max_size=30),
)


@FUZZ
@given(
    cols=st.dictionaries(
        st.sampled_from(["label", "cand_score", "cand_pred", "base_score", "base_pred", "sex", "race"]),
        column_values,
        min_size=1,
    ),
    fmt=st.sampled_from(["parquet", "csv", "jsonl"]),
)
def test_generated_data_files(case, monkeypatch, capsys, cols, fmt):
    folder, policy, base = case
    n = min(len(v) for v in cols.values())
    table = {k: v[:n] for k, v in cols.items()}
    full = {
        k: list(base[k][:n])
        for k in ("label", "cand_score", "cand_pred", "base_score", "base_pred", "sex", "race")
    }
    full.update(table)
    try:
        t = pa.table(full)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return  # not a table Arrow can hold, so no user can write it either
    path = folder / f"gen.{fmt}"
    if fmt == "parquet":
        pq.write_table(t, path)
    elif fmt == "csv":
        try:
            pcsv.write_csv(t, path)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return
    else:
        path.write_text("\n".join(json.dumps(r, allow_nan=True) for r in t.to_pylist()))
    pol = dict(policy, data={"eval": {"path": path.name}})
    write_policy(folder / "gen.yml", pol)
    code, out, err = _run(
        monkeypatch, capsys, "evaluate", "--policy", str(folder / "gen.yml"), "--out", str(folder / "og")
    )
    if code == 0:
        assert _valid_rows(pq.read_table(path) if fmt == "parquet" else None, full), (full, out)


def _valid_rows(_table, full) -> bool:
    """The independent oracle: labels and predictions are yes/no, scores are finite probabilities, groups set."""
    ok_label = all(v in ("yes", "no") for v in full["label"])
    ok_pred = all(v in ("yes", "no") for k in ("cand_pred", "base_pred") for v in full[k])
    ok_score = all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= 1
        for k in ("cand_score", "base_score")
        for v in full[k]
    )
    return ok_label and ok_pred and ok_score


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("signed")
    model = folder / "model"
    model.mkdir()
    (model / "w.bin").write_bytes(bytes(range(200)))
    priv, pub = keypair(folder)
    sign(model, PrivateKey.load(priv))
    return model, pub, json.loads((model / "model.sig").read_text())


@FUZZ
@given(data=st.data())
def test_mutated_bundles(signed, monkeypatch, capsys, data):
    model, pub, good = signed
    path = data.draw(st.sampled_from(list(_paths(good))))
    bad = _replace(good, path, data.draw(json_like))
    (model / "model.sig").write_text(json.dumps(bad))
    try:
        code, _, _ = _run(
            monkeypatch,
            capsys,
            "verify",
            str(model),
            "--signature",
            str(model / "model.sig"),
            "--key",
            str(pub),
        )
    finally:
        (model / "model.sig").write_text(json.dumps(good))
    if code == 0:  # only a change outside what is signed (the key hint, DSSE's unsigned keyid) may verify
        assert _signed_part(bad) == _signed_part(good), bad


def _signed_part(bundle) -> tuple:
    env = bundle["dsseEnvelope"]
    return env["payload"], env["payloadType"], [s["sig"] for s in env["signatures"]]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reg")
    model = folder / "m"
    model.mkdir()
    (model / "w.bin").write_bytes(b"weights")
    pol = binary_policy()
    pol["promotion"] = {
        "registry": "reg",
        "environments": [{"name": "staging", "signers": [{"key": "k.pub"}]}],
    }
    write_policy(folder / "gates.yml", pol)
    with pytest.MonkeyPatch.context() as mp:  # module-scoped: no function's monkeypatch to lend
        code = cli_main(
            mp,
            "register",
            "--policy",
            str(folder / "gates.yml"),
            "--model",
            "churn",
            str(model),
            "--actor",
            "ci",
        )
    assert code == 0
    return folder


@FUZZ
@given(
    which=st.sampled_from(["audit.jsonl", "audit.head.json", "pointer", "version.json"]),
    content=st.one_of(st.binary(max_size=80), json_like.map(lambda v: json.dumps(v).encode())),
)
def test_damaged_registry_files(registry, monkeypatch, capsys, which, content):
    reg = registry / "reg"
    target = {
        "audit.jsonl": reg / "audit.jsonl",
        "audit.head.json": reg / "audit.head.json",
        "pointer": reg / "models" / "churn" / "environments" / "staging.json",
        "version.json": next((reg / "models" / "churn" / "versions").iterdir()) / "version.json",
    }[which]
    before = target.read_bytes() if target.exists() else None
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    try:
        code, _, _ = _run(monkeypatch, capsys, "audit", "verify", "--policy", str(registry / "gates.yml"))
    finally:
        if before is None:
            target.unlink()
        else:
            target.write_bytes(before)
    if code == 0:
        assert content == before, (which, content)
