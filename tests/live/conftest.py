"""The live analysis' tests share real models, trained once."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression


@pytest.fixture(scope="module")
def models():
    """Stable: logistic regression on every feature. Good canary: the same on fresh data. Bad canary: one
    that lost its strongest feature (a broken feature pipeline), several points less accurate."""
    rng = np.random.default_rng(0)

    def data(n):
        x = rng.normal(size=(n, 4))
        y = (x @ [2.0, 1.0, 0.5, 0.0] + rng.normal(size=n) > 0).astype(int)
        return x, y

    x, y = data(20_000)
    stable = LogisticRegression().fit(x, y)
    good = LogisticRegression().fit(*data(20_000))
    broken = x.copy()
    broken[:, 0] = 0.0
    bad = LogisticRegression().fit(broken, y)
    return data, {"v1": stable, "v2": good, "v2-bad": bad}
