"""deepchecks in its own virtual environment: it needs numpy < 2, pandas < 3, scikit-learn < 1.8 and
setuptools < 81 (it imports pkg_resources), which cannot share an environment with this package."""

from __future__ import annotations

from mlops_gates.data.sidecar import Sidecar

DEEPCHECKS = Sidecar(
    "deepchecks",
    {
        "deepchecks": "0.19.1",
        "numpy": "1.26.4",
        "pandas": "2.3.3",
        "scikit-learn": "1.7.2",
        "pyarrow": "20.0.0",
    },
    ("setuptools<81",),
    "MLOPS_GATES_DEEPCHECKS_ENV",
    "deepchecks.tabular",
)
default_path, python, check, setup = (
    DEEPCHECKS.default_path,
    DEEPCHECKS.python,
    DEEPCHECKS.check,
    DEEPCHECKS.setup,
)
