"""The command line as a user meets it: exit codes, messages, never a traceback, never a PROMOTE by accident."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mlops_gates import cli as cli_mod
from tests.conftest import binary_policy, write_parquet, write_policy

GOOD_GATES = [{"type": "accuracy", "metrics": [{"metric": "accuracy", "op": ">=", "value": 0.6}]}]


def run_cli(args: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["mlops-gates", *args])
    with pytest.raises(SystemExit) as info:
        cli_mod.main()
        raise SystemExit(0)
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


def evaluate(tmp_path, policy, capsys, monkeypatch):
    write_policy(tmp_path / "gates.yml", policy)
    return run_cli(
        ["evaluate", "--policy", str(tmp_path / "gates.yml"), "--out", str(tmp_path / "out")],
        capsys,
        monkeypatch,
    )


def test_promote_exits_0_and_writes_outputs(binary_case, capsys, monkeypatch):
    folder, _ = binary_case
    code, out, err = evaluate(folder, binary_policy(gates=GOOD_GATES), capsys, monkeypatch)
    assert code == 0, err
    assert "PROMOTE" in out
    for name in ("decision.json", "report.md", "junit.xml", "report.html"):
        assert (folder / "out" / name).is_file()
        assert str(folder / "out" / name) in out


def test_reject_exits_1(binary_case, capsys, monkeypatch):
    folder, _ = binary_case
    gates = [{"type": "accuracy", "metrics": [{"metric": "accuracy", "op": ">=", "value": 0.99}]}]
    code, out, _ = evaluate(folder, binary_policy(gates=gates), capsys, monkeypatch)
    assert code == 1 and "REJECT" in out
    assert json.loads((folder / "out" / "decision.json").read_text())["decision"] == "REJECT"


def _bad(tmp_path: Path, capsys, monkeypatch, frame=None, policy=None, write=None):
    if frame is not None:
        write_parquet(tmp_path / "eval.parquet", frame)
    if write:
        write(tmp_path)
    code, out, err = evaluate(tmp_path, policy or binary_policy(gates=GOOD_GATES), capsys, monkeypatch)
    assert code == 2, (out, err)
    assert "Traceback" not in err and "PROMOTE" not in out
    assert not (tmp_path / "out" / "decision.json").exists()
    return err


def test_missing_data_file(tmp_path, capsys, monkeypatch):
    err = _bad(tmp_path, capsys, monkeypatch)
    assert "eval.parquet: file not found" in err and "hint:" in err


def test_empty_data_file(tmp_path, capsys, monkeypatch):
    err = _bad(tmp_path, capsys, monkeypatch, write=lambda p: (p / "eval.parquet").write_bytes(b""))
    assert "file is empty" in err


def test_corrupt_parquet(tmp_path, capsys, monkeypatch):
    err = _bad(
        tmp_path,
        capsys,
        monkeypatch,
        write=lambda p: (p / "eval.parquet").write_bytes(b"not parquet at all" * 10),
    )
    assert "cannot read as parquet" in err


def test_missing_and_misnamed_columns(binary_case, capsys, monkeypatch):
    folder, frame = binary_case
    frame = dict(frame)
    frame["cand_scores"] = frame.pop("cand_score")
    err = _bad(folder, capsys, monkeypatch, frame=frame)
    assert "missing column 'cand_score' (did you mean 'cand_scores'?)" in err


def test_nan_labels(binary_case, capsys, monkeypatch):
    folder, frame = binary_case
    frame = dict(frame)
    label = frame["label"].astype(object)
    label[[3, 7]] = None
    frame["label"] = label
    err = _bad(folder, capsys, monkeypatch, frame=frame)
    assert "label 'label' is empty or NaN at row 4, 8" in err


def test_wrong_score_type(binary_case, capsys, monkeypatch):
    folder, frame = binary_case
    frame = dict(frame, cand_score=frame["cand_score"].astype(str))
    err = _bad(folder, capsys, monkeypatch, frame=frame)
    assert "score column 'cand_score' holds string, not numbers" in err


def test_scores_outside_unit_interval(binary_case, capsys, monkeypatch):
    folder, frame = binary_case
    s = frame["cand_score"].copy()
    s[10] = 1.5
    s[11] = np.nan
    err = _bad(folder, capsys, monkeypatch, frame=dict(frame, cand_score=s))
    assert "outside [0, 1] at row 11, 12" in err


def test_prediction_outside_label_values(binary_case, capsys, monkeypatch):
    folder, frame = binary_case
    err = _bad(
        folder, capsys, monkeypatch, frame=dict(frame, cand_pred=np.where(frame["cand_pred"] == "yes", 1, 0))
    )
    assert "candidate prediction" in err and "label" in err


def test_third_label_value_in_binary_task(binary_case, capsys, monkeypatch):
    folder, frame = binary_case
    label = frame["label"].copy().astype(object)
    label[5] = "maybe"
    err = _bad(folder, capsys, monkeypatch, frame=dict(frame, label=label))
    assert "more than two values" in err and "multiclass" in err


def test_positive_label_never_seen(binary_case, capsys, monkeypatch):
    folder, _ = binary_case
    err = _bad(folder, capsys, monkeypatch, policy=binary_policy(gates=GOOD_GATES, positive_label="Yes"))
    assert "positive_label 'Yes' never appears" in err


def test_ragged_csv_rows(tmp_path, capsys, monkeypatch):
    csv = "label,cand_pred,cand_score,base_pred,base_score,sex,race\nyes,yes,0.9,yes,0.8,F,a\nno,no,0.1,no\n"
    err = _bad(
        tmp_path,
        capsys,
        monkeypatch,
        policy=binary_policy(data="eval.csv", gates=GOOD_GATES),
        write=lambda p: (p / "eval.csv").write_text(csv),
    )
    assert "eval.csv" in err and "columns" in err.lower()


def test_jsonl_missing_key_in_a_row(tmp_path, capsys, monkeypatch):
    rows = [
        {
            "label": "yes",
            "cand_pred": "yes",
            "cand_score": 0.9,
            "base_pred": "no",
            "base_score": 0.2,
            "sex": "F",
            "race": "a",
        }
    ] * 3
    rows.append(
        {"label": "no", "cand_pred": "no", "sex": "M", "race": "b", "base_pred": "no", "base_score": 0.1}
    )
    text = "\n".join(json.dumps(r) for r in rows) + "\n"
    err = _bad(
        tmp_path,
        capsys,
        monkeypatch,
        policy=binary_policy(data="eval.jsonl", gates=GOOD_GATES),
        write=lambda p: (p / "eval.jsonl").write_text(text),
    )
    assert "candidate score 'cand_score' is missing" in err and "row 4" in err


def test_unknown_metric_exit_2(binary_case, capsys, monkeypatch):
    folder, _ = binary_case
    gates = [{"type": "accuracy", "metrics": [{"metric": "auc", "op": ">=", "value": 0.6}]}]
    err = _bad(folder, capsys, monkeypatch, policy=binary_policy(gates=gates))
    assert "unknown metric 'auc'" in err


def test_hostile_yaml_exit_2(tmp_path, capsys, monkeypatch):
    (tmp_path / "gates.yml").write_text("a: &a ['x','x']\nb: [*a, *a]\n")
    code, _, err = run_cli(["evaluate", "--policy", str(tmp_path / "gates.yml")], capsys, monkeypatch)
    assert code == 2 and "aliases" in err


def test_policy_check_and_schema(capsys, monkeypatch):
    code, out, _ = run_cli(["policy", "check", "mlops_gates/demo/gates.yml"], capsys, monkeypatch)
    assert code == 0 and "valid (4 gates" in out
    code, out, _ = run_cli(["policy", "schema"], capsys, monkeypatch)
    assert code == 0 and json.loads(out)["title"].startswith("mlops-gates policy")


def test_usage_error_exit_2(capsys, monkeypatch):
    code, _, err = run_cli(["evaluate", "--no-such-option"], capsys, monkeypatch)
    assert code == 2 and "No such option" in err


def test_unexpected_error_exit_3(binary_case, capsys, monkeypatch):
    folder, _ = binary_case
    import mlops_gates.evaluation as ev

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ev, "collect", boom)
    code, _, err = evaluate(folder, binary_policy(gates=GOOD_GATES), capsys, monkeypatch)
    assert code == 3 and "unexpected error: RuntimeError: disk on fire" in err and "Traceback" not in err


def test_module_entry_point_and_fast_help():
    """`python -m mlops_gates --help` works and does not import the heavy libraries."""
    code = (
        "import sys, time; t = time.perf_counter(); sys.argv = ['mlops-gates', '--help']\n"
        "from mlops_gates.cli import main\ntry: main()\nexcept SystemExit: pass\n"
        "heavy = [m for m in ('sklearn', 'scipy', 'pyarrow', 'numpy', 'torch', 'jsonschema') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "Exit codes: 0 PROMOTE" in out and "HEAVY []" in out
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "mlops_gates", "--version"], capture_output=True, text=True)
    assert res.returncode == 0 and "mlops-gates" in res.stdout
    assert time.perf_counter() - t < 10  # generous: a sanity bound, not a benchmark


def test_demo_runs_end_to_end_and_its_record_validates(tmp_path, capsys, monkeypatch):
    import jsonschema

    code, out, err = run_cli(["demo", "--out", str(tmp_path / "demo")], capsys, monkeypatch)
    assert code in (0, 1), err  # a verdict either way
    rec = json.loads((tmp_path / "demo" / "decision.json").read_text())
    schema = json.loads(Path("schemas/decision.v1.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(rec)
    assert rec["evaluation"]["rows"] == 16281
    assert {g["type"] for g in rec["gates"]} == {"integrity", "accuracy", "fairness", "regression"}
    fair = next(g for g in rec["gates"] if g["type"] == "fairness")
    assert {r["group"] for r in fair["details"]["groups"]} >= {
        "sex=Male",
        "sex=Female",
        "race=White",
        "race=Black",
    }
    assert rec["decision"] in out and "report.md" in out


def test_model_digests_recorded(binary_case, capsys, monkeypatch):
    folder, _ = binary_case
    model = folder / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\x00\x01")
    (model / "config.json").write_text("{}")
    write_policy(folder / "gates.yml", binary_policy(gates=GOOD_GATES))
    args = [
        "evaluate",
        "--policy",
        str(folder / "gates.yml"),
        "--out",
        str(folder / "out"),
        "--model",
        f"candidate={model}",
        "--model",
        f"baseline={folder / 'eval.parquet'}",
    ]
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 0, err
    models = json.loads((folder / "out" / "decision.json").read_text())["inputs"]["models"]
    import hashlib

    files = {
        n: "sha256:" + hashlib.sha256((model / n).read_bytes()).hexdigest()
        for n in ("config.json", "weights.bin")
    }
    root = hashlib.sha256("".join(f"{n}\0{d}\n" for n, d in sorted(files.items())).encode()).hexdigest()
    assert models["candidate"] == {"path": str(model), "digest": f"sha256:{root}", "files": files}
    assert (
        models["baseline"]["digest"]
        == "sha256:" + hashlib.sha256((folder / "eval.parquet").read_bytes()).hexdigest()
    )
    code, _, err = run_cli([*args[:5], "--model", "candidate"], capsys, monkeypatch)
    assert code == 2 and "ROLE=PATH" in err
    code, _, err = run_cli([*args[:5], "--model", f"candidate={folder / 'nope'}"], capsys, monkeypatch)
    assert code == 2 and "nope: not found" in err


def test_out_that_is_a_file_or_unwritable(binary_case, capsys, monkeypatch):
    folder, _ = binary_case
    write_policy(folder / "gates.yml", binary_policy(gates=GOOD_GATES))
    (folder / "taken").write_text("x")
    code, _, err = run_cli(
        ["evaluate", "--policy", str(folder / "gates.yml"), "--out", str(folder / "taken")],
        capsys,
        monkeypatch,
    )
    assert code == 2 and "taken" in err and "is a file" in err
    # a folder under a regular file cannot be made, by root either (a permission test would pass silently as
    # root, which CI containers are)
    code, _, err = run_cli(
        ["evaluate", "--policy", str(folder / "gates.yml"), "--out", str(folder / "taken" / "o")],
        capsys,
        monkeypatch,
    )
    assert code == 2 and "cannot write the outputs" in err, err
    assert (folder / "taken").read_text() == "x"


def test_weight_of_the_wrong_type(binary_case, capsys, monkeypatch):
    folder, frame = binary_case
    pol = binary_policy(gates=GOOD_GATES)
    pol["columns"]["weight"] = "w"
    err = _bad(
        folder,
        capsys,
        monkeypatch,
        frame=dict(frame, w=np.array(["heavy"] * len(frame["label"]))),
        policy=pol,
    )
    assert "weight 'w' holds string, not numbers" in err
