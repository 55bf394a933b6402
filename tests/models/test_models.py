"""Models gated end to end: real scikit-learn and PyTorch models trained in the test, loaded safely,
pinned by digest, and refused when they are unsafe, broken or mismatched."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_gates.errors import GateError
from mlops_gates.evaluation import run
from mlops_gates.models.base import Task
from mlops_gates.models.pin import pin
from mlops_gates.models.predict import predict
from mlops_gates.policy import Dataset, ModelSpec
from tests.conftest import cli_main, write_policy

FEATURES = ["x1", "x2", "x3", "x4"]
MLP_SOURCE = """
import torch


class MLP(torch.nn.Module):
    def __init__(self, inputs=4, hidden=8, outputs=1):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(inputs, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, outputs))

    def forward(self, x):
        return self.net(x)  # logits
"""


def dataset(n: int = 3000, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    group = rng.choice(["a", "b"], n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(1.5 * X[:, 0] - X[:, 1] + 0.5 * X[:, 2])))).astype(int)
    out = {f"x{i + 1}": X[:, i] for i in range(4)}
    out.update(group=group, label=y)
    return out


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A repository-like folder: data, the model class module, and cwd set there (as in CI)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlp_model.py").write_text(MLP_SOURCE)
    data = dataset()
    pq.write_table(pa.table({k: pa.array(v) for k, v in data.items()}), tmp_path / "eval.parquet")
    return tmp_path, data


def train_sklearn(folder: Path, data: dict, C: float = 1.0, name: str = "model.skops") -> Path:
    import pandas as pd
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = pd.DataFrame({f: data[f] for f in FEATURES})
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C)).fit(X, data["label"])
    path = folder / name
    sio.dump(model, path)
    return path


def train_torch(data: dict, outputs: int = 1, epochs: int = 60):
    import torch

    sys.path.insert(0, os.getcwd())
    from mlp_model import MLP

    torch.manual_seed(0)
    model = MLP(outputs=outputs)
    X = torch.tensor(np.column_stack([data[f] for f in FEATURES]), dtype=torch.float32)
    y = torch.tensor(data["label"], dtype=torch.float32)[:, None]
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(epochs):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(X)[:, :1], y)
        loss.backward()
        opt.step()
    return model.eval(), X


def save_torch(model, X, folder: Path) -> dict[str, Path]:
    import torch
    from safetensors.torch import save_file

    paths = {
        "torchscript": folder / "mlp.pt",
        "torch-export": folder / "mlp.pt2",
        "safetensors": folder / "mlp.safetensors",
    }
    torch.jit.save(torch.jit.trace(model, X[:8]), paths["torchscript"])
    batch = torch.export.Dim("batch")
    torch.export.save(
        torch.export.export(model, (X[:8],), dynamic_shapes={"x": {0: batch}}), paths["torch-export"]
    )
    save_file(model.state_dict(), paths["safetensors"])
    return paths


def policy(models: dict, gates: list | None = None) -> dict:
    return {
        "version": 1,
        "task": "binary",
        "positive_label": 1,
        "data": {"eval": {"path": "eval.parquet"}},
        "columns": {"label": "label", "sensitive": ["group"]},
        "models": models,
        "settings": {"bootstrap": {"replicates": 300}},
        "gates": gates
        or [{"type": "accuracy", "metrics": [{"metric": "roc_auc", "op": ">=", "value": 0.7}]}],
    }


def test_sklearn_skops_candidate_against_baseline_end_to_end(workspace):
    folder, data = workspace
    import skops.io as sio

    cand = train_sklearn(folder, data, C=1.0, name="cand.skops")
    train_sklearn(folder, data, C=0.001, name="base.skops")
    gates = [
        {"type": "safety"},
        {"type": "accuracy", "metrics": [{"metric": "roc_auc", "op": ">=", "value": 0.7}]},
        {"type": "regression", "metrics": [{"metric": "roc_auc", "margin": {"absolute": 0.02}}]},
        {
            "type": "budgets",
            "metrics": [
                {"metric": "size_mb", "op": "<=", "value": 5},
                {"metric": "latency_p95_ms", "op": "<=", "value": 5000},
                {"metric": "peak_memory_mb", "op": "<=", "value": 4000},
                {"metric": "size_mb", "margin": {"relative": 1.0}},
            ],
        },
    ]
    out = run(
        write_policy(
            folder / "gates.yml",
            policy({"candidate": {"path": "cand.skops"}, "baseline": {"path": "base.skops"}}, gates),
        ),
        folder / "out",
    )
    statuses = {g.type: g.status.value for g in out.results}
    assert statuses == {"safety": "PASS", "accuracy": "PASS", "regression": "PASS", "budgets": "PASS"}, (
        out.record["reasons"]
    )
    models = out.record["inputs"]["models"]
    import hashlib

    assert models["candidate"]["digest"] == "sha256:" + hashlib.sha256(cand.read_bytes()).hexdigest()
    run_ = models["candidate"]["run"]
    assert run_["rows"] == 3000 and run_["peak_memory_bytes"] > 10 * 2**20 and run_["features"] == FEATURES
    # the scores the gate judged are the model's own
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    model = sio.load(cand, trusted=sio.get_untrusted_types(file=cand))
    auc = roc_auc_score(
        data["label"], model.predict_proba(pd.DataFrame({f: data[f] for f in FEATURES}))[:, 1]
    )
    judged = next(m for g in out.record["gates"] if g["type"] == "accuracy" for m in g["metrics"])
    assert judged["value"] == pytest.approx(auc, abs=1e-3)


@pytest.mark.parametrize("fmt", ["torchscript", "torch-export", "safetensors"])
def test_torch_formats_predict_like_the_model(workspace, fmt):
    import torch

    folder, data = workspace
    model, X = train_torch(data)
    paths = save_torch(model, X, folder)
    pinned = pin(paths[fmt])
    spec = ModelSpec(
        pinned.path,
        model_class="mlp_model:MLP" if fmt == "safetensors" else None,
        features=tuple(FEATURES),
        batch_size=512,
    )
    metrics = predict(
        spec,
        Task("binary", 1),
        Dataset(folder / "eval.parquet", "parquet"),
        folder / "p.parquet",
        expected=pinned.files,
    )
    got = pq.read_table(folder / "p.parquet").column("score").to_numpy()
    with torch.inference_mode():
        want = torch.sigmoid(model(X))[:, 0].numpy()
    assert np.allclose(got, want, atol=1e-6)
    assert metrics["batches"] == 6 and metrics["latency_p95_ms"] >= metrics["latency_p50_ms"] > 0


def test_torch_candidate_against_sklearn_baseline_through_the_cli(workspace, capsys, monkeypatch):
    from mlops_gates import cli

    folder, data = workspace
    model, X = train_torch(data)
    save_torch(model, X, folder)
    train_sklearn(folder, data, name="base.skops")
    pol = policy(
        {
            "candidate": {
                "path": "mlp.safetensors",
                "class": "mlp_model:MLP",
                "init": {"hidden": 8},
                "features": FEATURES,
            },
            "baseline": {"path": "base.skops"},
        },
        [
            {"type": "regression", "metrics": [{"metric": "roc_auc", "margin": {"absolute": 0.05}}]},
            {"type": "budgets", "metrics": [{"metric": "latency_p95_ms", "margin": {"relative": 100}}]},
        ],
    )
    write_policy(folder / "gates.yml", pol)
    monkeypatch.setattr(sys, "argv", ["mlops-gates", "evaluate", "--policy", "gates.yml", "--out", "out"])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code in (0, 1), capsys.readouterr().err
    rec = json.loads((folder / "out" / "decision.json").read_text())
    assert set(rec["inputs"]["models"]) == {"candidate", "baseline"}
    budgets = next(g for g in rec["gates"] if g["type"] == "budgets")
    assert budgets["metrics"][0]["baseline"] > 0


def test_malicious_pickle_never_runs(workspace, capsys, monkeypatch):

    folder, _ = workspace
    marker = folder / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (folder / "model.pkl").write_bytes(pickle.dumps(Evil()))

    def main(*args: str) -> int:
        return cli_main(monkeypatch, *args)

    assert main("scan", "model.pkl") == 1
    out = capsys.readouterr().out
    assert "UNSAFE" in out and ("imports posix.system" in out or "imports nt.system" in out), out
    write_policy(folder / "gates.yml", policy({"candidate": {"path": "model.pkl", "trust": "pickle"}}))
    assert main("evaluate", "--policy", "gates.yml", "--out", "out") == 2
    err = capsys.readouterr().err
    assert "refused: the pickle imports posix.system" in err or "refused: the pickle imports nt.system" in err
    # the safety gate, scanning a path, fails closed and names the global
    pq.write_table(pa.table({"label": [0, 1] * 50, "s": np.linspace(0, 1, 100)}), folder / "preds.parquet")
    pol = {
        "version": 1,
        "task": "binary",
        "positive_label": 1,
        "data": {"eval": {"path": "preds.parquet"}},
        "columns": {"label": "label", "candidate": {"score": "s"}},
        "gates": [{"type": "safety", "paths": ["model.pkl"]}],
    }
    out = run(write_policy(folder / "safety.yml", pol), folder / "out2")
    assert out.decision.verdict == "REJECT" and "posix.system" in out.results[0].reason + json.dumps(
        out.record
    )
    assert not marker.exists()  # no code ran, at any step


def test_pickle_needs_trust_and_never_loads_on_a_fork(workspace, monkeypatch):
    folder, data = workspace
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(pd.DataFrame({f: data[f] for f in FEATURES}), data["label"])
    (folder / "m.pkl").write_bytes(pickle.dumps(model))
    ds = Dataset(folder / "eval.parquet", "parquet")
    spec = ModelSpec(folder / "m.pkl")
    with pytest.raises(GateError, match="pickle files can run code"):
        predict(spec, Task("binary", 1), ds, folder / "p.parquet")
    trusted = ModelSpec(folder / "m.pkl", trust="pickle")
    assert predict(trusted, Task("binary", 1), ds, folder / "p.parquet")["rows"] == 3000
    event = folder / "event.json"
    event.write_text(
        json.dumps(
            {
                "pull_request": {
                    "head": {"repo": {"full_name": "fork/models", "fork": True}},
                    "base": {"repo": {"full_name": "acme/models"}},
                }
            }
        )
    )
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    with pytest.raises(GateError, match="never load when this is a pull request from a fork"):
        predict(trusted, Task("binary", 1), ds, folder / "p.parquet")


def test_skops_type_outside_the_allow_list_is_refused_by_name(workspace):
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    folder, _ = workspace
    sio.dump(FunctionTransformer(print), folder / "f.skops")
    with pytest.raises(GateError, match="outside the allow-list: builtins.print"):
        predict(
            ModelSpec(folder / "f.skops"),
            Task("binary", 1),
            Dataset(folder / "eval.parquet", "parquet"),
            folder / "p.parquet",
        )


CUDA_TOLERANCE = 1e-5  # probabilities: CPU and GPU kernels differ in the last float32 bits


@pytest.mark.parametrize("fmt", ["torchscript", "torch-export", "safetensors"])
def test_cuda_predicts_as_the_cpu_does(workspace, fmt):
    """On a machine with a GPU: the same model, the same rows, CPU against CUDA, within CUDA_TOLERANCE."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here (the CPU build of torch, or no GPU)")
    folder, data = workspace
    model, X = train_torch(data)
    paths = save_torch(model, X, folder)
    scores = {}
    for device in ("cpu", "cuda"):
        pinned = pin(paths[fmt])
        spec = ModelSpec(
            pinned.path,
            model_class="mlp_model:MLP" if fmt == "safetensors" else None,
            features=tuple(FEATURES),
            device=device,
            batch_size=700,
        )
        out = folder / f"{device}.parquet"
        metrics = predict(
            spec, Task("binary", 1), Dataset(folder / "eval.parquet", "parquet"), out, expected=pinned.files
        )
        assert metrics["device"] == device
        if device == "cuda":  # sized from free device memory, not the policy's batch_size
            assert 1024 <= metrics["device_batch_rows"] <= 1 << 20, metrics
        scores[device] = pq.read_table(out).column("score").to_numpy()
    assert np.abs(scores["cpu"] - scores["cuda"]).max() <= CUDA_TOLERANCE


def test_cuda_batches_overlap_transfer_and_compute_without_mixing_rows(workspace):
    """Many small device batches through the copy stream: every row's score where the CPU puts it."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here (the CPU build of torch, or no GPU)")
    from mlops_gates.models.torch_adapter import load_torch

    folder, data = workspace
    model, X = train_torch(data)
    path = save_torch(model, X, folder)["torchscript"]
    batch = pq.read_table(folder / "eval.parquet").to_batches(max_chunksize=10**6)[0]
    out = {}
    for device in ("cpu", "cuda"):
        adapter = load_torch(ModelSpec(path, device=device), path, "torchscript", Task("binary", 1))
        if device == "cuda":
            adapter.rows = 128  # 24 device batches in flight one after another
        out[device] = adapter.predict(batch, FEATURES)
    assert out["cuda"].shape == out["cpu"].shape == (3000, 1)
    assert np.abs(out["cpu"] - out["cuda"]).max() <= CUDA_TOLERANCE


def test_torch_refusals_and_bad_inputs(workspace, monkeypatch):
    folder, data = workspace
    model, X = train_torch(data)
    paths = save_torch(model, X, folder)
    ds = Dataset(folder / "eval.parquet", "parquet")

    def run_(spec: ModelSpec, task: Task | None = None) -> None:
        predict(spec, task or Task("binary", 1), ds, folder / "p.parquet")

    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(GateError, match="TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is set"):
        run_(ModelSpec(paths["torchscript"], features=tuple(FEATURES)))
    monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    broken = folder / "broken.pt2"
    broken.write_bytes(paths["torch-export"].read_bytes()[:2000])
    with pytest.raises(GateError, match="cannot be loaded as torch-export|not a readable"):
        run_(ModelSpec(broken, features=tuple(FEATURES)))
    with pytest.raises(GateError, match="returns 1 outputs per row; a multiclass task"):
        run_(
            ModelSpec(paths["torchscript"], features=tuple(FEATURES)),
            Task("multiclass", None, ("a", "b", "c")),
        )
    with pytest.raises(GateError, match="missing column 'x9'"):
        run_(ModelSpec(paths["torchscript"], features=("x1", "x2", "x3", "x9")))
    with pytest.raises(GateError, match="feature 'group' holds string"):
        run_(ModelSpec(paths["torchscript"], features=("x1", "x2", "x3", "group")))
    with pytest.raises(GateError, match="need the model's class"):
        run_(ModelSpec(paths["safetensors"], features=tuple(FEATURES)))
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(GateError, match="no CUDA device is visible"):
            run_(ModelSpec(paths["torchscript"], features=tuple(FEATURES), device="cuda"))
    with pytest.raises(GateError, match="features"):
        run_(ModelSpec(paths["torchscript"], features=("x1", "x2")))  # two inputs for a four-input model


def test_missing_torch_names_the_extra(workspace, monkeypatch):
    from mlops_gates.models.torch_adapter import load_torch

    folder, _ = workspace
    (folder / "m.pt2").write_bytes(b"PK")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(GateError) as info:
        load_torch(ModelSpec(folder / "m.pt2"), folder / "m.pt2", "torch-export", Task("binary", 1))
    assert "mlops-gates[torch]" in info.value.render()


def test_a_file_changed_after_pinning_is_never_loaded(workspace):
    folder, data = workspace
    path = train_sklearn(folder, data)
    pinned = pin(folder)  # a folder: the model and its companions
    assert set(pinned.files) >= {"model.skops", "eval.parquet"}
    (pinned.path / "model.skops").write_bytes((pinned.path / "model.skops").read_bytes() + b"\0")
    spec = ModelSpec(pinned.path / "model.skops")
    with pytest.raises(GateError, match="changed after it was pinned"):
        pinned.verify()
    with pytest.raises(GateError, match="changed after it was pinned"):
        predict(
            spec,
            Task("binary", 1),
            Dataset(folder / "eval.parquet", "parquet"),
            folder / "p.parquet",
            expected={"model.skops": pinned.files["model.skops"]},
        )
    shutil.rmtree(pinned.path)
    assert path.exists()  # the source is never touched


def test_predict_command(workspace, capsys, monkeypatch):

    folder, data = workspace
    train_sklearn(folder, data)

    def main(*args: str) -> int:
        return cli_main(monkeypatch, "predict", *args)

    assert (
        main(
            "--model", "model.skops", "--data", "eval.parquet", "--out", "p.parquet", "--positive-label", "1"
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "3,000 rows scored by model.skops (sha256:" in out and "p95" in out
    scores = pq.read_table(folder / "p.parquet").column("score").to_numpy()
    assert scores.shape == (3000,) and scores.min() >= 0 and scores.max() <= 1
    assert main("--model", "nope.skops", "--data", "eval.parquet") == 2
    assert "model not found" in capsys.readouterr().err
    assert main("--model", "model.skops", "--data", "eval.parquet", "--init", "{oops") == 2
    assert main("--model", "model.skops", "--data", "eval.parquet", "--positive-label", "yes") == 2
    assert "do not match the label's ['yes']" in capsys.readouterr().err


def test_torchscript_candidate_against_exported_baseline(workspace):
    folder, data = workspace
    model, X = train_torch(data)
    save_torch(model, X, folder)
    pol = policy(
        {
            "candidate": {"path": "mlp.pt", "features": FEATURES},
            "baseline": {"path": "mlp.pt2", "features": FEATURES},
        },
        [
            {"type": "safety"},
            {
                "type": "regression",
                "metrics": [{"metric": "log_loss", "margin": {"absolute": 0.001}}],
                # 0 flips in a few thousand rows shows a rate under 1%, not under 0.1% (exact binomial bound)
                "negative_flips": {"max_rate": 0.01},
            },
        ],
    )
    out = run(write_policy(folder / "gates.yml", pol), folder / "out")
    # the same network in two formats: identical scores, so no flips and no loss difference
    reg = next(g for g in out.record["gates"] if g["type"] == "regression")
    flips = next(m for m in reg["metrics"] if m["metric"] == "negative_flip_rate")
    diff = next(m for m in reg["metrics"] if m["metric"].startswith("log_loss"))
    assert flips["value"] == 0 and abs(diff["value"]) < 1e-6
    assert out.decision.verdict == "PROMOTE", out.record["reasons"]
    kinds = {f["kind"] for f in out.record["gates"][0]["details"]["files"]}
    assert {"torchscript", "torch-export", "pickle"} <= kinds


def _skops_with(folder: Path, data: dict, name: str, mutate) -> Path:
    import pandas as pd
    import skops.io as sio
    from sklearn.ensemble import RandomForestClassifier

    model = RandomForestClassifier(n_estimators=3, random_state=0)
    model.fit(pd.DataFrame({f: data[f] for f in FEATURES}), data["label"])
    mutate(model)
    sio.dump(model, folder / name)
    return folder / name


def test_skops_file_naming_a_function_is_refused_everywhere(workspace, capsys, monkeypatch):
    """Threat: a working model whose skops file also names a function (skops would call or hand it over);
    the old allow-list trusted every `sklearn.*` name, so scan said safe and an untrusted run PROMOTEd."""
    import sklearn.utils._testing as testing

    folder, data = workspace
    fn = "sklearn.utils._testing.assert_run_python_script_without_output"
    path = _skops_with(
        folder,
        data,
        "evil.skops",
        lambda m: setattr(m, "hook_", testing.assert_run_python_script_without_output),
    )
    assert cli_main(monkeypatch, "scan", str(path)) == 1
    out = capsys.readouterr().out
    assert "UNSAFE" in out and fn in out, out
    with pytest.raises(GateError, match="outside the allow-list: " + fn.replace(".", r"\.")):
        predict(
            ModelSpec(path),
            Task("binary", 1),
            Dataset(folder / "eval.parquet", "parquet"),
            folder / "p.parquet",
        )
    monkeypatch.setenv("MLOPS_GATES_UNTRUSTED", "1")
    pol = policy({"candidate": {"path": "evil.skops"}}, [{"type": "safety"}])
    write_policy(folder / "gates.yml", pol)
    code = cli_main(monkeypatch, "evaluate", "--policy", "gates.yml", "--out", "out")
    captured = capsys.readouterr()
    assert code == 2 and "PROMOTE" not in captured.out and fn in captured.err, captured
    # the same forest without the function loads, predicts and is safe
    good = _skops_with(folder, data, "good.skops", lambda m: None)
    assert cli_main(monkeypatch, "scan", str(good)) == 0
    spec = ModelSpec(good)
    assert (
        predict(spec, Task("binary", 1), Dataset(folder / "eval.parquet", "parquet"), folder / "p.parquet")[
            "rows"
        ]
        == 3000
    )


@pytest.mark.parametrize(
    "damage",
    ["child beyond the tree", "child before its parent", "feature beyond the inputs"],
)
def test_tree_with_forged_indices_never_predicts(workspace, damage):
    """Threat: tree node indices that scikit-learn follows without bounds checks (a read outside memory, or a
    loop); every tree is checked after loading and before the first prediction."""
    folder, data = workspace

    def mutate(model):
        tree = model.estimators_[1].tree_
        inner = int(np.flatnonzero(tree.children_left != -1)[-1])
        if damage == "child beyond the tree":
            tree.children_right[inner] = 10**6
        elif damage == "child before its parent":
            tree.children_left[inner] = 0
        else:
            tree.feature[inner] = 4

    path = _skops_with(folder, data, "forged.skops", mutate)
    with pytest.raises(GateError, match="a tree in the model is malformed"):
        predict(
            ModelSpec(path),
            Task("binary", 1),
            Dataset(folder / "eval.parquet", "parquet"),
            folder / "p.parquet",
        )
    assert not (folder / "p.parquet").exists()


def test_pickle_that_cannot_be_walked_to_its_end_never_loads(workspace, monkeypatch):
    """Threat: a trusted-by-policy pickle whose valid prefix hides bytes the scanner could not read; loading
    needs "safe", not merely "nothing bad seen"."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    folder, data = workspace
    model = LogisticRegression().fit(pd.DataFrame({f: data[f] for f in FEATURES}), data["label"])
    (folder / "m.pkl").write_bytes(pickle.dumps(model) + b"\xff\x00garbage")
    spec = ModelSpec(folder / "m.pkl", trust="pickle")
    with pytest.raises(GateError, match="cannot be checked"):
        predict(spec, Task("binary", 1), Dataset(folder / "eval.parquet", "parquet"), folder / "p.parquet")


def _pr_event(head_repo: dict | None) -> dict:
    return {
        "pull_request": {
            "number": 3,
            "head": {"sha": "a" * 40, "repo": head_repo},
            "base": {"repo": {"full_name": "acme/models"}},
        },
        "repository": {"full_name": "acme/models"},
    }


FORK_SIGNALS = {
    "GitHub's fork flag": ({"GITHUB_ACTIONS": "true"}, _pr_event({"full_name": "acme/models", "fork": True})),
    "another head repository": (
        {"GITHUB_ACTIONS": "true"},
        _pr_event({"full_name": "mallory/models", "fork": False}),
    ),
    "a deleted head repository": ({"GITHUB_ACTIONS": "true"}, _pr_event(None)),
    "a workflow_run about a fork": (
        {"GITHUB_ACTIONS": "true"},
        {
            "workflow_run": {"head_repository": {"full_name": "mallory/models"}},
            "repository": {"full_name": "acme/models"},
        },
    ),
    "GitLab's source project": (
        {
            "GITLAB_CI": "true",
            "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": "99",
            "CI_MERGE_REQUEST_PROJECT_ID": "42",
        },
        None,
    ),
    "MLOPS_GATES_UNTRUSTED": ({"MLOPS_GATES_UNTRUSTED": "1"}, None),
}


@pytest.fixture
def trusted_pickle(workspace):
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    folder, data = workspace
    model = LogisticRegression().fit(pd.DataFrame({f: data[f] for f in FEATURES}), data["label"])
    (folder / "m.pkl").write_bytes(pickle.dumps(model))
    pol = policy(
        {"candidate": {"path": "m.pkl", "trust": "pickle"}},
        [{"type": "accuracy", "metrics": [{"metric": "roc_auc", "op": ">=", "value": 0.6}]}],
    )
    write_policy(folder / "gates.yml", pol)
    return folder


@pytest.mark.parametrize("signal", sorted(FORK_SIGNALS))
def test_each_fork_signal_alone_stops_a_trusted_pickle(trusted_pickle, monkeypatch, capsys, signal):
    """Threat: a fork's PR ships a pickle under a policy that trusts pickles; each signal alone refuses it."""
    folder = trusted_pickle
    env, event = FORK_SIGNALS[signal]
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    if event is not None:
        (folder / "event.json").write_text(json.dumps(event))
        monkeypatch.setenv("GITHUB_EVENT_PATH", str(folder / "event.json"))
    code = cli_main(monkeypatch, "evaluate", "--policy", "gates.yml", "--out", "out")
    out, err = capsys.readouterr()
    assert code == 2 and "never load when" in err and "PROMOTE" not in out, (signal, err)
    assert not (folder / "out" / "decision.json").exists()


def test_a_same_repository_pull_request_may_load_a_trusted_pickle(trusted_pickle, monkeypatch, capsys):
    folder = trusted_pickle
    (folder / "event.json").write_text(json.dumps(_pr_event({"full_name": "acme/models", "fork": False})))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(folder / "event.json"))
    code = cli_main(monkeypatch, "evaluate", "--policy", "gates.yml", "--out", "out")
    out, err = capsys.readouterr()
    assert code == 0 and "PROMOTE" in out, err
