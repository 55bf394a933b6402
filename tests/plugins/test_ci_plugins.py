"""The GitHub actions, workflows and GitLab components validate offline with the tools their platforms'
users run: check-jsonschema (vendored schemas), actionlint and zizmor; and they keep the habits that make
composite actions safe (inputs reach scripts only as environment variables)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ACTIONS = [ROOT / "action.yml", *sorted((ROOT / "actions").glob("*/action.yml"))]
WORKFLOWS = [
    *sorted((ROOT / "examples" / "github").glob("*.yml")),
    *sorted((ROOT / ".github" / "workflows").glob("*.yml")),
]
COMPONENTS = sorted((ROOT / "templates").glob("*.yml"))


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        found = shutil.which(name)
        if not found:
            pytest.fail(f"{name} is not installed: make test installs the dev extras")
        return found
    return str(path)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, cwd=ROOT)


def test_there_is_something_to_check():
    assert len(ACTIONS) == 8 and len(WORKFLOWS) >= 6 and len(COMPONENTS) == 5


def test_actions_and_workflows_match_githubs_schemas(tmp_path):
    r = run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions", *map(str, ACTIONS))
    assert r.returncode == 0, r.stdout + r.stderr
    r = run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS))
    assert r.returncode == 0, r.stdout + r.stderr
    dependabot = str(ROOT / ".github" / "dependabot.yml")
    r = run(tool("check-jsonschema"), "--builtin-schema", "vendor.dependabot", dependabot)
    assert r.returncode == 0, r.stdout + r.stderr
    broken = tmp_path / "action.yml"
    broken.write_text(
        (ROOT / "action.yml").read_text().replace("runs:\n  using: composite", "runz:\n  using: composite")
    )
    assert (
        run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions", str(broken)).returncode
        != 0
    )


def test_actionlint_and_zizmor_find_nothing(tmp_path):
    r = run(tool("actionlint"), *map(str, WORKFLOWS))
    assert r.returncode == 0, r.stdout + r.stderr
    r = run(tool("zizmor"), "--offline", "action.yml", "actions", "examples/github", ".github/workflows")
    assert r.returncode == 0 and "No findings" in r.stdout + r.stderr, r.stdout + r.stderr
    # and zizmor does catch the mistake these files avoid: an input expanded inside a script
    bad = tmp_path / "action.yml"
    bad.write_text(
        "name: x\ndescription: x\ninputs:\n  p:\n    description: p\nruns:\n  using: composite\n  steps:\n"
        "    - shell: bash\n      run: echo ${{ inputs.p }}\n"
    )
    r = run(tool("zizmor"), "--offline", str(bad))
    assert r.returncode != 0 and "template-injection" in r.stdout + r.stderr


def test_inputs_reach_scripts_as_environment_variables_only():
    for path in ACTIONS + WORKFLOWS:
        doc = yaml.safe_load(path.read_text())
        steps = (
            doc["runs"]["steps"]
            if "runs" in doc
            else [s for j in doc["jobs"].values() for s in j.get("steps", [])]
        )
        for step in steps:
            assert "${{" not in step.get("run", ""), f"{path}: {step.get('name', step.get('id'))}"
            if "run" in step and path.name == "action.yml":
                assert "github.action_path" not in step["run"]
    root = yaml.safe_load((ROOT / "action.yml").read_text())
    assert not any(
        str(s.get("uses", "")).startswith("./actions/") for s in root["runs"]["steps"]
    )  # resolves in the user's workspace


def test_gitlab_components_match_gitlabs_schema(tmp_path):
    for comp in COMPONENTS:
        spec, jobs = comp.read_text().split("\n---\n")
        assert "spec" in yaml.safe_load(spec) and "inputs" in yaml.safe_load(spec)["spec"]
        assert not {"default", "workflow", "variables", "stages", "include"} & set(yaml.safe_load(jobs)), (
            f"{comp}: no global keywords in a component"
        )
        for i, part in enumerate((spec, jobs)):
            f = tmp_path / f"{comp.stem}-{i}.yml"
            f.write_text(part)
            r = run(
                tool("check-jsonschema"),
                "--builtin-schema",
                "vendor.gitlab-ci",
                "--data-transform",
                "gitlab-ci",
                str(f),
            )
            assert r.returncode == 0, f"{comp}: {r.stdout}{r.stderr}"
    r = run(
        tool("check-jsonschema"),
        "--builtin-schema",
        "vendor.gitlab-ci",
        "--data-transform",
        "gitlab-ci",
        str(ROOT / "examples" / "gitlab" / ".gitlab-ci.yml"),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text("job:\n  script: [true]\n  artifacts:\n    reportz: {}\n")
    assert run(tool("check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci", str(broken)).returncode != 0


@pytest.mark.parametrize("template", sorted((ROOT / "templates").glob("*.yml")), ids=lambda p: p.stem)
def test_gitlab_components_install_their_own_version_by_default(template):
    """The default `install` is empty: the job installs mlops-gates (with the extras it needs) at the
    component's own version, the newest release when included by a branch or SHA, or exactly what was asked."""
    import re
    import subprocess

    text = template.read_text()
    assert "component: [version]" in text and "MLOPS_GATES_VERSION: $[[ component.version ]]" in text
    (spec,) = set(re.findall(r'pip" install --quiet ("\$\{MLOPS_GATES_INSTALL:-[^"]+")', text))
    (which,) = set(re.findall(r'- (case "\$MLOPS_GATES_VERSION" in .*? esac)', text))

    def pip_argument(**env: str) -> str:
        script = f"{which}; printf %s {spec}"
        return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True).stdout

    extras = "[signing]" if template.stem in ("sign", "promote", "full-pipeline") else ""
    assert pip_argument(MLOPS_GATES_VERSION="1.2.3") == f"mlops-gates{extras}==1.2.3"
    assert pip_argument() == f"mlops-gates{extras}"
    assert pip_argument(MLOPS_GATES_VERSION="1.2.3", MLOPS_GATES_INSTALL="./wheel.whl") == "./wheel.whl"
    # gitlab-ci-local hands the SHA a component was included by: never `mlops-gates==<sha>`
    assert (
        pip_argument(MLOPS_GATES_VERSION="440a64591f1e249c00e484d4f7f7f9cc9e28e1e8") == f"mlops-gates{extras}"
    )


def test_component_input_shapes_are_the_ones_the_tool_accepts():
    """An input with a shape carries GitLab's `regex`, the same rule the tool applies: a wrong value fails when
    the pipeline is created, not halfway through a promotion."""
    import json
    import re

    from mlops_gates.promotion.registry import NAME

    spec = yaml.safe_load((ROOT / "templates" / "promote.yml").read_text().split("\n---\n")[0])["spec"]
    inputs = spec["inputs"]
    assert inputs["model"]["regex"] == NAME.pattern
    policy = json.loads((ROOT / "mlops_gates" / "schemas" / "policy.v1.schema.json").read_text())
    assert inputs["environment"]["regex"] == policy["$defs"]["environment"]["properties"]["name"]["pattern"]
    assert re.fullmatch(inputs["environment"]["regex"], "staging") and not re.fullmatch(
        inputs["environment"]["regex"], "Prod;rm"
    )


def test_the_projects_own_gitlab_pipeline_runs_its_components_from_this_commit(tmp_path):
    """.gitlab-ci.yml includes this project's components by the commit's SHA (a local include cannot: the
    templates use the component context): GitLab's schema accepts it, and gitlab-ci-local expands it into the
    jobs it names, with the inputs applied; a release job runs on X.Y.Z tags only."""
    from tests.plugins.test_act import git
    from tests.plugins.test_gitlab_ci_local import gitlab_ci_local

    r = run(tool("check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci", str(ROOT / ".gitlab-ci.yml"))
    assert r.returncode == 0, r.stdout + r.stderr
    gcl = gitlab_ci_local()
    repo = tmp_path / "mlops-gates"
    shutil.copytree(ROOT / "templates", repo / "templates")
    shutil.copy(ROOT / ".gitlab-ci.yml", repo / ".gitlab-ci.yml")
    git(repo, "init", "-q")
    git(repo, "remote", "add", "origin", "https://gitlab.example.com/acme/mlops-gates.git")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "pipeline")
    preview = subprocess.run(
        [str(gcl), "--preview", "--no-color"], cwd=repo, capture_output=True, text=True, timeout=120
    )
    assert preview.returncode == 0, preview.stdout[-2000:] + preview.stderr[-2000:]
    jobs = yaml.safe_load(preview.stdout)
    job = jobs["selftest-evaluate"]
    assert [n["job"] if isinstance(n, dict) else n for n in job["needs"]] == ["selftest-demo"]
    assert job["variables"]["MLOPS_GATES_POLICY"] == "gate-out/gates.yml"
    assert job["variables"]["MLOPS_GATES_INSTALL"] == "."
    assert str(job["variables"]["MLOPS_GATES_PUBLISH"]).lower() == "false"
    assert jobs["catalog-release"]["rules"] == [{"if": "$CI_COMMIT_TAG =~ /^[0-9]+\\.[0-9]+\\.[0-9]+$/"}]
