"""Gate type -> implementation. A gate that raises becomes ERROR, never a pass and never a crash."""

from __future__ import annotations

from mlops_gates.errors import GateError
from mlops_gates.gates import accuracy, budgets, fairness, integrity, regression, safety, skew
from mlops_gates.gates.base import Context, GateFn, GateResult, Status
from mlops_gates.gates.deepchecks import gate as deepchecks
from mlops_gates.policy import GateSpec

GATES: dict[str, GateFn] = {
    "integrity": integrity.evaluate,
    "accuracy": accuracy.evaluate,
    "fairness": fairness.evaluate,
    "regression": regression.evaluate,
    "safety": safety.evaluate,
    "budgets": budgets.evaluate,
    "deepchecks": deepchecks.evaluate,
    "skew": skew.evaluate,
}


def run(spec: GateSpec, ctx: Context) -> GateResult:
    try:
        return GATES[spec.type](spec, ctx)
    except GateError as exc:  # fail closed, and say what to do
        return GateResult(spec.name, spec.type, Status.ERROR, exc.render().replace("\n  hint:", "; hint:"))
    except Exception as exc:  # fail closed: report, do not pass
        return GateResult(spec.name, spec.type, Status.ERROR, f"{type(exc).__name__}: {exc}")
