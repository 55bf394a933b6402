"""mlops-gates: a promotion gate for machine-learning models in CI.

The public, typed library API; the command line is a thin client of it. Names load on first use, so
`import mlops_gates` stays cheap and `mlops-gates --help` fast.

    policy = mlops_gates.load_policy("gates.yml")             # validated, typed, frozen
    ev = mlops_gates.evaluate("gates.yml")                    # decide; writes nothing
    ev.decision.verdict, ev.results, ev.record                # PROMOTE/HOLD/REJECT, per gate, the record
    text = mlops_gates.render(ev.record, "markdown")          # or "junit", "html", "record"
    out = mlops_gates.run("gates.yml", "gate-out")            # evaluate and write every report
    key = mlops_gates.PrivateKey.load(path)                   # or KeylessSigner for Sigstore
    mlops_gates.sign(model_dir, key, decision=record_path)    # sign the model and the decision
    mlops_gates.verify(model_dir, signature, Signer(key=pub)) # before trusting a model
    reg = mlops_gates.open_registry("registry/")              # then register, promote, rollback
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mlops_gates._version import __version__

# public name -> (module, attribute)
_API = {
    "load_policy": ("mlops_gates.policy", "load"),
    "Policy": ("mlops_gates.policy", "Policy"),
    "Signer": ("mlops_gates.policy", "Signer"),
    "evaluate": ("mlops_gates.evaluation", "evaluate"),
    "run": ("mlops_gates.evaluation", "run"),
    "Evaluation": ("mlops_gates.evaluation", "Evaluation"),
    "Outcome": ("mlops_gates.evaluation", "Outcome"),
    "Decision": ("mlops_gates.decision", "Decision"),
    "GateResult": ("mlops_gates.gates.base", "GateResult"),
    "MetricResult": ("mlops_gates.gates.base", "MetricResult"),
    "Status": ("mlops_gates.gates.base", "Status"),
    "render": ("mlops_gates.report", "render"),
    "publish": ("mlops_gates.platforms.publish", "publish"),
    "PrivateKey": ("mlops_gates.signing.envelope", "PrivateKey"),
    "sign": ("mlops_gates.signing.sign", "sign"),
    "verify": ("mlops_gates.signing.verify", "verify"),
    "open_registry": ("mlops_gates.promotion.stores", "open_registry"),
    "register": ("mlops_gates.promotion.promote", "register"),
    "promote": ("mlops_gates.promotion.promote", "promote"),
    "rollback": ("mlops_gates.promotion.promote", "rollback"),
    "GateError": ("mlops_gates.errors", "GateError"),
    "ExitCode": ("mlops_gates.errors", "ExitCode"),
}

__all__ = [
    "__version__",
    "load_policy",
    "Policy",
    "Signer",
    "evaluate",
    "run",
    "Evaluation",
    "Outcome",
    "Decision",
    "GateResult",
    "MetricResult",
    "Status",
    "render",
    "publish",
    "PrivateKey",
    "sign",
    "verify",
    "open_registry",
    "register",
    "promote",
    "rollback",
    "GateError",
    "ExitCode",
]

if TYPE_CHECKING:
    from mlops_gates.decision import Decision
    from mlops_gates.errors import ExitCode, GateError
    from mlops_gates.evaluation import Evaluation, Outcome, evaluate, run
    from mlops_gates.gates.base import GateResult, MetricResult, Status
    from mlops_gates.platforms.publish import publish
    from mlops_gates.policy import Policy, Signer
    from mlops_gates.policy import load as load_policy
    from mlops_gates.promotion.promote import promote, register, rollback
    from mlops_gates.promotion.stores import open_registry
    from mlops_gates.report import render
    from mlops_gates.signing.envelope import PrivateKey
    from mlops_gates.signing.sign import sign
    from mlops_gates.signing.verify import verify


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'mlops_gates' has no attribute {name!r}")
    module, attr = _API[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
