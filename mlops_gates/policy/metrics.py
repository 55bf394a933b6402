"""The metric catalogue: every name a policy may use, with its direction and the tasks it applies to."""

from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    name: str
    higher_is_better: bool
    tasks: frozenset[str]
    kind: str  # "overall" or "fairness"


_CLS = frozenset({"binary", "multiclass"})
_BIN = frozenset({"binary"})
_REG = frozenset({"regression"})

OVERALL: dict[str, MetricInfo] = {
    m.name: m
    for m in [
        MetricInfo("accuracy", True, _CLS, "overall"),
        MetricInfo("balanced_accuracy", True, _CLS, "overall"),
        MetricInfo("precision", True, _CLS, "overall"),
        MetricInfo("recall", True, _CLS, "overall"),
        MetricInfo("f1", True, _CLS, "overall"),
        MetricInfo("roc_auc", True, _CLS, "overall"),  # multiclass: one-vs-rest, macro
        MetricInfo("log_loss", False, _CLS, "overall"),
        MetricInfo("brier", False, _CLS, "overall"),
        MetricInfo("ece", False, _CLS, "overall"),
        MetricInfo("mae", False, _REG, "overall"),
        MetricInfo("rmse", False, _REG, "overall"),
        MetricInfo("r2", True, _REG, "overall"),
    ]
}

GROUP_RATES = ("selection_rate", "tpr", "fpr", "accuracy", "precision")
AGGREGATES = ("difference", "ratio", "overall_difference")
# Named fairness criteria and the rates they are built from.
CRITERIA = {
    "demographic_parity": ("selection_rate",),
    "equal_opportunity": ("tpr",),
    "equalized_odds": ("tpr", "fpr"),
}

FAIRNESS: dict[str, MetricInfo] = {}
for _rate in GROUP_RATES:
    for _agg in AGGREGATES:
        # per-group accuracy is defined for any number of classes; the other rates need a positive class
        _tasks = _CLS if _rate == "accuracy" else _BIN
        FAIRNESS[f"{_rate}_{_agg}"] = MetricInfo(f"{_rate}_{_agg}", _agg == "ratio", _tasks, "fairness")
for _crit in CRITERIA:
    for _agg in ("difference", "ratio"):
        FAIRNESS[f"{_crit}_{_agg}"] = MetricInfo(f"{_crit}_{_agg}", _agg == "ratio", _BIN, "fairness")

_ANY = frozenset({"binary", "multiclass", "regression"})
BUDGET: dict[str, MetricInfo] = {
    n: MetricInfo(n, False, _ANY, "budget")
    for n in ("size_mb", "peak_memory_mb", "latency_p50_ms", "latency_p95_ms")
}

ALL: dict[str, MetricInfo] = {**OVERALL, **FAIRNESS, **BUDGET}


def suggest(name: str, choices: list[str]) -> str | None:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return close[0] if close else None


def split_fairness(name: str) -> tuple[tuple[str, ...], str]:
    """'equalized_odds_ratio' -> (('tpr', 'fpr'), 'ratio'); 'tpr_overall_difference' -> (('tpr',), 'overall_difference')."""
    for agg in ("overall_difference", "difference", "ratio"):
        suffix = "_" + agg
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            return CRITERIA.get(base, (base,)), agg
    raise KeyError(name)
