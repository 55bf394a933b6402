"""gates.yml: valid files load into typed policy; every bad one names the place and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_gates import policy as P
from mlops_gates.errors import ExitCode, GateError, PolicyError
from tests.conftest import binary_policy, write_policy


def problems(tmp_path, text: str) -> str:
    f = tmp_path / "gates.yml"
    f.write_text(text)
    with pytest.raises(PolicyError) as info:
        P.load(f)
    assert info.value.exit_code == ExitCode.USAGE
    return info.value.render()


def test_example_policy_loads():
    pol = P.load("mlops_gates/demo/gates.yml")
    assert pol.task == "binary" and pol.positive_label == ">50K"
    assert [g.type for g in pol.gates] == ["integrity", "accuracy", "fairness", "regression"]
    assert pol.on.insufficient_group == "hold"  # the key `on:` is not read as YAML 1.1's boolean
    assert pol.settings.correction == "holm" and pol.settings.replicates == 2000
    reg = pol.gates[3]
    assert {(m.metric, m.kind) for m in reg.margins} >= {("roc_auc", "absolute"), ("log_loss", "relative")}
    assert pol.digest.startswith("sha256:") and len(pol.digest) == 71


def test_syntax_error_names_line(tmp_path):
    msg = problems(tmp_path, "version: 1\ntask: [binary\n")
    assert "YAML syntax" in msg and "line 3" in msg


def test_unknown_key_suggests_and_names_line(tmp_path):
    text = (
        "version: 1\ntask: binary\npositive_label: 1\ndata: {eval: {path: x.parquet}}\ncolumns: {label: y, candidate: {score: s}}\n"
        "gates:\n  - type: accuracy\n    metrics: [{metric: accuracy, op: '>=', value: 0.5}]\n    slicez: true\n"
    )
    msg = problems(tmp_path, text)
    assert "line 9" in msg and "unknown key 'slicez'" in msg and "did you mean 'slices'" in msg


def test_every_problem_reported_at_once(tmp_path):
    pol = binary_policy()
    pol["task"] = "binary-ish"
    pol["settings"]["confidence"] = "high"
    pol["colums"] = {}
    msg = problems(tmp_path, __import__("yaml").safe_dump(pol))
    assert "3 problems" in msg
    assert (
        "did you mean 'binary'" in msg
        and "'high' is not of type 'number'" in msg
        and "did you mean 'columns'" in msg
    )


def test_aliases_refused_billion_laughs(tmp_path):
    lol = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(9)
    )
    msg = problems(tmp_path, lol)
    assert "aliases" in msg and "line 2" in msg


def test_duplicate_key_is_an_error(tmp_path):
    msg = problems(tmp_path, "version: 1\nversion: 1\n")
    assert "appears twice" in msg and "line 2" in msg


@pytest.mark.parametrize("text", ["", "   \n", "- just\n- a list\n", "42\n"])
def test_empty_or_not_a_mapping(tmp_path, text):
    msg = problems(tmp_path, text)
    assert "empty" in msg or "mapping" in msg


def test_missing_file(tmp_path):
    with pytest.raises(PolicyError, match="not found"):
        P.load(tmp_path / "nope.yml")


def test_empty_gates_is_an_error_not_a_pass(tmp_path):
    pol = binary_policy()
    pol["gates"] = []
    msg = problems(tmp_path, __import__("yaml").safe_dump(pol))
    assert "gates" in msg and ("should be non-empty" in msg or "too short" in msg)


def test_unknown_metric_suggests(tmp_path):
    pol = binary_policy(
        gates=[{"type": "accuracy", "metrics": [{"metric": "acuracy", "op": ">=", "value": 0.5}]}]
    )
    msg = problems(tmp_path, __import__("yaml").safe_dump(pol))
    assert (
        "unknown metric 'acuracy'" in msg
        and "did you mean 'accuracy'" in msg
        and "gates[0].metrics[0].metric" in msg
    )


@pytest.mark.parametrize(
    "gate, expected",
    [
        (
            {"type": "accuracy", "metrics": [{"metric": "mae", "op": "<=", "value": 1}]},
            "does not apply to a binary task",
        ),
        (
            {
                "type": "accuracy",
                "metrics": [{"metric": "demographic_parity_ratio", "op": ">=", "value": 0.8}],
            },
            "is a fairness metric",
        ),
        (
            {"type": "fairness", "metrics": [{"metric": "tpr", "op": ">=", "value": 0.8}]},
            "gate on its spread: tpr_difference",
        ),
        (
            {"type": "fairness", "metrics": [{"metric": "roc_auc", "op": ">=", "value": 0.8}]},
            "not a fairness metric",
        ),
        (
            {
                "type": "fairness",
                "features": ["age"],
                "metrics": [{"metric": "tpr_ratio", "op": ">=", "value": 0.8}],
            },
            "not in columns.sensitive",
        ),
        ({"type": "regression"}, "checks nothing"),
        (
            {
                "type": "regression",
                "metrics": [{"metric": "accuracy", "margin": {"absolute": 0.01, "relative": 0.1}}],
            },
            "margin",
        ),
        (
            {"type": "accuracy", "metrics": [{"metric": "accuracy", "op": "=>", "value": 0.5}]},
            "did you mean '>='",
        ),
        ({"type": "integrity"}, "checks nothing"),
        ({"type": "integrity", "drift": {"max_psi": 0.2}}, "drift needs reference data"),
        ({"type": "fairnes", "metrics": []}, "did you mean 'fairness'"),
    ],
)
def test_semantic_and_schema_errors(tmp_path, gate, expected):
    msg = problems(tmp_path, __import__("yaml").safe_dump(binary_policy(gates=[gate])))
    assert expected in msg


def test_binary_needs_positive_label(tmp_path):
    pol = binary_policy()
    del pol["positive_label"]
    assert "'positive_label' is a required property" in problems(tmp_path, __import__("yaml").safe_dump(pol))


def test_relative_paths_start_at_policy_folder(tmp_path):
    sub = tmp_path / "conf"
    sub.mkdir()
    pol = P.load(write_policy(sub / "gates.yml", binary_policy(data="../data/eval.csv")))
    assert pol.eval_data.path == sub / "../data/eval.csv" and pol.eval_data.format == "csv"


@pytest.mark.parametrize(
    "environments, expected",
    [
        ([{"name": "prod", "signers": [{"key": "k.pub"}]}] * 2, "'prod' twice"),
        ([{"name": "prod", "signers": [{"key": "k.pub"}], "canary": [50, 10]}], "canary steps must increase"),
        ([{"name": "prod", "signers": []}], "promotion.environments[0].signers"),
        ([{"name": "prod", "signers": [{"key": "k.pub", "identity": "x", "issuer": "y"}]}], "signers[0]"),
        ([{"name": "prod", "signers": [{"identity": "x"}]}], "signers[0]"),
        (
            [{"name": "prod", "signers": [{"key": "k"}], "min_time_in_previous": "1 week"}],
            "min_time_in_previous",
        ),
    ],
)
def test_promotion_section_errors(tmp_path, environments, expected):
    pol = binary_policy()
    pol["promotion"] = {"environments": environments}
    assert expected in problems(tmp_path, __import__("json").dumps(pol))  # JSON is YAML, without aliases


def test_promotion_section_loads(tmp_path):
    pol = binary_policy()
    pol["promotion"] = {
        "registry": "reg",
        "max_decision_age": "12h",
        "environments": [
            {"name": "staging", "signers": [{"key": "keys/release.pub"}]},
            {
                "name": "production",
                "signers": [{"identity_regexp": "^https://github.com/acme/.*$", "issuer": "https://iss"}],
                "approvers": ["alice"],
                "distinct_from_author": True,
                "min_time_in_previous": "30m",
                "canary": [10, 50],
            },
        ],
    }
    p = P.load(write_policy(tmp_path / "gates.yml", pol)).promotion
    assert p is not None and p.registry == str(tmp_path / "reg") and p.max_decision_age == 12 * 3600
    assert p.environments[0].signers[0].key == tmp_path / "keys/release.pub"
    idx, prod = p.env("production")
    assert idx == 1 and prod.min_time_in_previous == 1800 and prod.canary == (10, 50)
    with pytest.raises(GateError, match="no environment named 'prod'"):
        p.env("prod")


def test_every_shipped_schema_is_a_valid_json_schema():
    import json
    from importlib import resources

    import jsonschema

    folder = resources.files("mlops_gates").joinpath("schemas")
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".json"))
    assert "audit-entry.v1.schema.json" in names
    for name in names:
        jsonschema.Draft202012Validator.check_schema(json.loads(folder.joinpath(name).read_text()))


def test_policy_reference_is_generated_from_the_schema():
    """docs/policy-reference.md is exactly what `mlops-gates policy reference` prints: regenerate it after a
    schema change (`mlops-gates policy reference > docs/policy-reference.md`)."""
    from mlops_gates.policy.reference import markdown

    doc = Path(__file__).resolve().parents[2] / "docs" / "policy-reference.md"
    assert doc.read_text() == markdown()
    assert "| `settings.confidence` |" in doc.read_text()  # the generator walks the whole schema


def test_schema_defaults_are_the_defaults_the_policy_uses(tmp_path):
    """The defaults the reference shows (the schema's) are the ones a policy without those keys gets."""
    schema = P.schema()["properties"]
    bare = {k: v for k, v in binary_policy().items() if k not in ("settings", "on")}
    pol = P.load(write_policy(tmp_path / "gates.yml", bare))
    settings = schema["settings"]["properties"]
    expected = {k: v["default"] for k, v in settings.items() if "default" in v}
    expected |= {k: v["default"] for k, v in settings["bootstrap"]["properties"].items() if "default" in v}
    got = {k: getattr(pol.settings, k) for k in expected}
    assert got == expected and len(expected) == 9
    on = {k: v["default"] for k, v in schema["on"]["properties"].items()}
    assert on == {k: getattr(pol.on, k) for k in on}
