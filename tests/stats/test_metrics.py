"""Every metric against an independent computation: scikit-learn, fairlearn, or a hand-worked table."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from mlops_gates import policy as P
from mlops_gates.gates.base import Context
from mlops_gates.gates.common import metric_values
from mlops_gates.gates.groups import fairness_values, group_counts
from mlops_gates.stats.collect import collect
from mlops_gates.stats.compute import auc_binning_bound
from tests.conftest import binary_policy, write_parquet, write_policy

CLS = ["accuracy", "balanced_accuracy", "precision", "recall", "f1"]


def context(tmp_path, frame, policy) -> Context:
    write_parquet(tmp_path / "eval.parquet", frame)
    pol = P.load(write_policy(tmp_path / "gates.yml", policy))
    return Context(pol, collect(pol))


def point(values: dict, name: str) -> float:
    return float(np.asarray(values[name])[0])


def test_binary_count_metrics_match_sklearn(tmp_path, binary_case):
    _, f = binary_case
    ctx = context(tmp_path, f, binary_policy())
    y, c = f["label"] == "yes", f["cand_pred"] == "yes"
    vals, _, n = metric_values(ctx, "c", CLS)
    assert int(n) == len(y)
    assert point(vals, "accuracy") == pytest.approx(skm.accuracy_score(y, c), abs=1e-12)
    assert point(vals, "balanced_accuracy") == pytest.approx(skm.balanced_accuracy_score(y, c), abs=1e-12)
    assert point(vals, "precision") == pytest.approx(skm.precision_score(y, c), abs=1e-12)
    assert point(vals, "recall") == pytest.approx(skm.recall_score(y, c), abs=1e-12)
    assert point(vals, "f1") == pytest.approx(skm.f1_score(y, c), abs=1e-12)


def test_score_metrics_match_sklearn(tmp_path, binary_case):
    _, f = binary_case
    ctx = context(tmp_path, f, binary_policy())
    y, s = f["label"] == "yes", f["cand_score"]
    vals, _, _ = metric_values(ctx, "c", ["log_loss", "brier", "ece", "roc_auc"])
    assert point(vals, "log_loss") == pytest.approx(skm.log_loss(y, s), rel=1e-10)
    assert point(vals, "brier") == pytest.approx(skm.brier_score_loss(y, s), rel=1e-10)
    # ECE by hand: 10 equal-width bins, |mean score - positive rate| weighted by bin share
    b = np.minimum((s * 10).astype(int), 9)
    ece = sum(abs(s[b == k].mean() - y[b == k].mean()) * (b == k).mean() for k in range(10) if (b == k).any())
    assert point(vals, "ece") == pytest.approx(ece, abs=1e-12)
    # AUC: exact for the binned scores (ties within a bin), and within the reported bound of the raw AUC
    edges = ctx.stats.edges
    binned = np.searchsorted(edges, s, side="right")
    assert point(vals, "roc_auc") == pytest.approx(skm.roc_auc_score(y, binned), abs=1e-12)
    bound = auc_binning_bound(ctx.stats, "c")
    assert abs(point(vals, "roc_auc") - skm.roc_auc_score(y, s)) <= bound + 1e-12
    assert abs(point(vals, "roc_auc") - skm.roc_auc_score(y, s)) < 5e-4  # in practice far inside the bound


def test_weighted_metrics_match_sklearn(tmp_path, binary_case):
    _, f = binary_case
    f = dict(f, w=np.random.default_rng(3).uniform(0.2, 3.0, len(f["label"])))
    pol = binary_policy()
    pol["columns"]["weight"] = "w"
    ctx = context(tmp_path, f, pol)
    y, c, s, w = f["label"] == "yes", f["cand_pred"] == "yes", f["cand_score"], f["w"]
    vals, _, _ = metric_values(ctx, "c", ["accuracy", "precision", "recall", "f1", "log_loss", "brier"])
    assert point(vals, "accuracy") == pytest.approx(skm.accuracy_score(y, c, sample_weight=w), abs=1e-12)
    assert point(vals, "precision") == pytest.approx(skm.precision_score(y, c, sample_weight=w), abs=1e-12)
    assert point(vals, "recall") == pytest.approx(skm.recall_score(y, c, sample_weight=w), abs=1e-12)
    assert point(vals, "f1") == pytest.approx(skm.f1_score(y, c, sample_weight=w), abs=1e-12)
    assert point(vals, "log_loss") == pytest.approx(skm.log_loss(y, s, sample_weight=w), rel=1e-10)
    assert point(vals, "brier") == pytest.approx(skm.brier_score_loss(y, s, sample_weight=w), rel=1e-10)


def test_multiclass_metrics_match_sklearn(tmp_path):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))
    tr, te = idx[:75], idx[75:]
    model = LogisticRegression(max_iter=50).fit(X[tr][:, :2], y[tr])  # a weak model, so errors exist
    proba = model.predict_proba(X[te][:, :2])
    names = np.array(["setosa", "versicolor", "virginica"])
    frame = {"label": names[y[te]], "pred": names[proba.argmax(1)], "group": rng.choice(["u", "v"], len(te))}
    for k, name in enumerate(names):
        frame[f"p_{name}"] = proba[:, k]
    policy = {
        "version": 1,
        "task": "multiclass",
        "classes": names.tolist(),
        "data": {"eval": {"path": "eval.parquet"}},
        "columns": {
            "label": "label",
            "candidate": {"prediction": "pred", "score": [f"p_{n}" for n in names]},
        },
        "gates": [{"type": "accuracy", "metrics": [{"metric": "roc_auc", "op": ">=", "value": 0.5}]}],
    }
    ctx = context(tmp_path, frame, policy)
    vals, _, _ = metric_values(ctx, "c", [*CLS, "log_loss", "brier", "roc_auc"])
    yt, yp = frame["label"], frame["pred"]
    assert point(vals, "accuracy") == pytest.approx(skm.accuracy_score(yt, yp), abs=1e-12)
    assert point(vals, "balanced_accuracy") == pytest.approx(skm.balanced_accuracy_score(yt, yp), abs=1e-12)
    for name in ("precision", "recall", "f1"):
        expected = getattr(skm, f"{name}_score")(yt, yp, average="macro", zero_division=0)
        assert point(vals, name) == pytest.approx(expected, abs=1e-12), name
    assert point(vals, "log_loss") == pytest.approx(skm.log_loss(y[te], proba), rel=1e-10)
    # one-vs-rest macro AUC: exact on the binned scores, close to the raw one
    binned = np.searchsorted(ctx.stats.edges, proba, side="right")
    expected = np.mean([skm.roc_auc_score(y[te] == k, binned[:, k]) for k in range(3)])
    assert point(vals, "roc_auc") == pytest.approx(expected, abs=1e-12)
    assert point(vals, "roc_auc") == pytest.approx(
        skm.roc_auc_score(y[te], proba, multi_class="ovr"), abs=2e-3
    )
    onehot = np.eye(3)[y[te]]
    assert point(vals, "brier") == pytest.approx(((proba - onehot) ** 2).sum(1).mean(), rel=1e-10)


def test_regression_metrics_match_sklearn(tmp_path):
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression, Ridge

    data = load_diabetes(scaled=False)
    X, y = data.data, data.target
    cand = LinearRegression().fit(X[:300], y[:300]).predict(X[300:])
    base = Ridge(alpha=10).fit(X[:300, :4], y[:300]).predict(X[300:, :4])
    frame = {"y": y[300:], "cand": cand, "base": base, "sex": np.where(X[300:, 1] == 1, "s1", "s2")}
    policy = {
        "version": 1,
        "task": "regression",
        "data": {"eval": {"path": "eval.parquet"}},
        "columns": {
            "label": "y",
            "candidate": {"prediction": "cand"},
            "baseline": {"prediction": "base"},
            "sensitive": ["sex"],
        },
        "gates": [{"type": "accuracy", "metrics": [{"metric": "r2", "op": ">=", "value": 0.1}]}],
    }
    ctx = context(tmp_path, frame, policy)
    for side, pred in (("c", cand), ("b", base)):
        vals, _, _ = metric_values(ctx, side, ["mae", "rmse", "r2"])
        assert point(vals, "mae") == pytest.approx(skm.mean_absolute_error(y[300:], pred), rel=1e-10)
        assert point(vals, "rmse") == pytest.approx(np.sqrt(skm.mean_squared_error(y[300:], pred)), rel=1e-10)
        assert point(vals, "r2") == pytest.approx(skm.r2_score(y[300:], pred), rel=1e-10)
    # the bucket bootstrap gives a real interval around the point
    vals, _, _ = metric_values(ctx, "c", ["mae"])
    lo, hi = np.quantile(vals["mae"][1:], [0.025, 0.975])
    assert lo < point(vals, "mae") < hi and hi - lo > 1.0


def test_fairness_matches_fairlearn(tmp_path, binary_case):
    from fairlearn import metrics as flm

    _, f = binary_case
    ctx = context(tmp_path, f, binary_policy())
    y, c = f["label"] == "yes", f["cand_pred"] == "yes"
    cols = ctx.stats.group_columns
    for feature in ("sex", "race"):
        g = (cols.index(feature),)
        labels, _ = group_counts(ctx, g)
        keep = np.ones(len(labels), dtype=bool)
        sf = f[feature]
        checks = {
            "demographic_parity_difference": flm.demographic_parity_difference(y, c, sensitive_features=sf),
            "demographic_parity_ratio": flm.demographic_parity_ratio(y, c, sensitive_features=sf),
            "equalized_odds_difference": flm.equalized_odds_difference(y, c, sensitive_features=sf),
            "equalized_odds_ratio": flm.equalized_odds_ratio(y, c, sensitive_features=sf),
            "equal_opportunity_difference": flm.equal_opportunity_difference(y, c, sensitive_features=sf),
            "equal_opportunity_ratio": flm.equal_opportunity_ratio(y, c, sensitive_features=sf),
        }
        for name, expected in checks.items():
            got = float(fairness_values(ctx, "c", g, name, keep)[0])
            assert got == pytest.approx(expected, abs=1e-12), (feature, name)
        # per-group rates and the gap to overall, against MetricFrame
        mf = flm.MetricFrame(
            metrics={
                "selection_rate": flm.selection_rate,
                "tpr": flm.true_positive_rate,
                "fpr": flm.false_positive_rate,
                "accuracy": skm.accuracy_score,
            },
            y_true=y,
            y_pred=c,
            sensitive_features=sf,
        )
        for rate in ("selection_rate", "tpr", "fpr", "accuracy"):
            got = float(fairness_values(ctx, "c", g, f"{rate}_overall_difference", keep)[0])
            assert got == pytest.approx(mf.difference(method="to_overall")[rate], abs=1e-12), (feature, rate)


def test_undefined_rate_is_undefined_not_zero(tmp_path):
    """fairlearn reports TPR 0.0 for a group with no positives; we report it undefined and keep it out of the gap."""
    from fairlearn.metrics import true_positive_rate

    rng = np.random.default_rng(5)
    n = 600
    group = np.where(np.arange(n) < 60, "tiny", np.where(np.arange(n) % 2 == 0, "p", "q"))
    y = np.where(group == "tiny", "no", rng.choice(["yes", "no"], n))
    s = rng.random(n)
    frame = {"label": y, "cand_score": s, "g": group}
    policy = {
        "version": 1,
        "task": "binary",
        "positive_label": "yes",
        "data": {"eval": {"path": "eval.parquet"}},
        "columns": {"label": "label", "candidate": {"score": "cand_score"}, "sensitive": ["g"]},
        "settings": {"bootstrap": {"replicates": 200}},
        "gates": [{"type": "fairness", "metrics": [{"metric": "tpr_difference", "op": "<=", "value": 0.5}]}],
    }
    write_parquet(tmp_path / "eval.parquet", frame)
    from mlops_gates.evaluation import run

    write_policy(tmp_path / "gates.yml", policy)
    out = run(tmp_path / "gates.yml", tmp_path / "out")
    tiny = [r for r in out.record["gates"][0]["details"]["groups"] if r["group"] == "g=tiny"][0]
    assert tiny["candidate"]["tpr"]["value"] is None  # undefined
    assert (
        true_positive_rate((y == "yes")[group == "tiny"], (s >= 0.5)[group == "tiny"]) == 0.0
    )  # fairlearn says 0
    flagged = [m for m in out.record["gates"][0]["metrics"] if m["scope"] == "g=tiny"]
    assert flagged and "0 positives" in flagged[0]["note"] and flagged[0]["status"] == "INCONCLUSIVE"
    assert out.decision.verdict == "HOLD"
