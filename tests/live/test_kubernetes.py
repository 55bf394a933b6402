"""The Kubernetes examples (examples/kubernetes/) against the published CRD schemas of Argo Rollouts,
Flagger and KServe (vendored in tests/assets/crds, with their source), strictly: an unknown field is an error, as the API
server's strict field validation makes it. And the examples call the service as it answers: the routes,
parameters and verdicts they name are the ones `serve` has."""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import yaml
from jsonschema import Draft7Validator

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "tests" / "assets" / "crds"
EXAMPLES = ROOT / "examples" / "kubernetes"


def strict(schema: dict) -> dict:
    """The schema with every object closed where it lists its properties and does not preserve unknown
    fields (what `kubectl apply --validate=strict` enforces)."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def schemas() -> dict[tuple[str, str], dict]:
    found = {}
    for path in sorted(CRDS.glob("*.yaml*")):
        text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
        for crd in yaml.safe_load_all(text):
            if not crd:
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for v in crd["spec"]["versions"]:
                found[(f"{group}/{v['name']}", kind)] = strict(v["schema"]["openAPIV3Schema"])
    return found


SCHEMAS = schemas()


def documents() -> list[tuple[str, dict]]:
    return [
        (p.name, d) for p in sorted(EXAMPLES.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d
    ]


def problems(doc: dict) -> list[str]:
    schema = SCHEMAS[(doc["apiVersion"], doc["kind"])]
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in Draft7Validator(schema).iter_errors(doc)]


@pytest.mark.parametrize(
    "name,doc", [d for d in documents() if (d[1]["apiVersion"], d[1]["kind"]) in SCHEMAS]
)
def test_the_examples_match_the_published_crd_schemas(name, doc):
    assert not problems(doc), problems(doc)


def test_every_custom_resource_in_the_examples_has_its_schema_here():
    kinds = {(d["apiVersion"], d["kind"]) for _, d in documents()}
    custom = {k for k in kinds if not k[0].startswith(("v1", "apps/", "batch/"))}
    assert custom and custom <= set(SCHEMAS), custom - set(SCHEMAS)


def test_strict_validation_catches_a_misspelt_field():
    (_, template), *_ = [d for d in documents() if d[1]["kind"] == "AnalysisTemplate"]
    metric = template["spec"]["metrics"][0]
    broken = {**template, "spec": {**template["spec"], "metrics": [{**metric, "succesCondition": "true"}]}}
    assert any("succesCondition" in p for p in problems(broken))


def test_the_examples_call_the_routes_and_verdicts_serve_has():
    from mlops_gates.cli.live import serve
    from mlops_gates.cli.watch import watch
    from mlops_gates.live.api import FLAGGER_OK

    template = next(d for _, d in documents() if d["kind"] == "AnalysisTemplate")
    (metric,) = template["spec"]["metrics"]
    web = metric["provider"]["web"]
    url = urlparse(web["url"])
    assert url.path == "/v1/analysis" and web["jsonPath"] == "{$.verdict}"
    assert set(parse_qs(url.query)) == {"canary", "stable", "split"}
    assert metric["successCondition"] == 'result == "PROMOTE"'
    assert metric["failureCondition"] == 'result == "ROLLBACK"'
    assert {a["name"] for a in template["spec"]["args"]} == set(re.findall(r"args\.(\w+)", web["url"]))
    canary = next(d for _, d in documents() if d["kind"] == "Canary")
    for hook in canary["spec"]["analysis"]["webhooks"]:
        assert urlparse(hook["url"]).path == f"/flagger/{hook['type']}" and hook["type"] in FLAGGER_OK
        assert set(hook["metadata"]) == {"canary", "stable"}
    deployment = next(
        d for _, d in documents() if d["kind"] == "Deployment" and d["metadata"]["name"] == "mlops-gates"
    )
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:2] == ["mlops-gates", "serve"]
    options = {o for p in serve.params for o in p.opts}
    assert {c for c in command if c.startswith("--")} <= options
    cron = next(d for _, d in documents() if d["kind"] == "CronJob")
    command = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:2] == ["mlops-gates", "watch"]
    assert {c for c in command if c.startswith("--")} <= {o for p in watch.params for o in p.opts}
