"""mlops-gates: a promotion gate for machine-learning models in CI."""

__version__ = "0.1.0"
