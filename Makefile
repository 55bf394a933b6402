# Two commands a new user needs: `make demo` and `make test`. Each makes its own virtual environment.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# pip's cache would hold a second copy of every wheel (pyspark's alone is 400 MB) on runners with little disk
export PIP_NO_CACHE_DIR := 1

.PHONY: demo test unit lint bench clean system-tools

NPM := .cache/npm/.installed

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

# The package's dependencies as wheels (about 150 MB): the tests that install a locally built release as a user
# would (the README's snippets, pre-commit's hook) take them from here, with no index and no network.
WHEELHOUSE := .cache/wheelhouse/.downloaded
$(WHEELHOUSE): pyproject.toml .github/release-requirements.txt
	$(PYTHON) -m pip download -q --only-binary :all: -d .cache/wheelhouse '.[signing]' 'setuptools>=77'
	$(PYTHON) -m pip download -q --only-binary :all: -d .cache/wheelhouse -r .github/release-requirements.txt
	touch $@

demo: $(BIN)/.installed
	$(BIN)/mlops-gates demo --out gate-out || [ $$? -eq 1 ]  # 1 = HOLD/REJECT: a verdict, not a failure

lint: $(BIN)/.installed
	$(BIN)/ruff check mlops_gates tests examples bench
	$(BIN)/ruff format --check mlops_gates tests examples bench
	$(BIN)/mypy mlops_gates

# GitHub's OpenAPI description (to check every request the GitHub driver sends) and gitlab-ci-local (to run the
# GitLab components; 4.74 and later crash on Node 20). Tests skip without them, except in CI.
$(NPM):
	command -v npm >/dev/null && npm install --silent --no-save --no-audit --no-fund --prefix .cache/npm @octokit/openapi@23.0.2 gitlab-ci-local@4.73.0 && touch $@ || true

# Debian's rsync (gitlab-ci-local needs it), prometheus (scrapes `serve`), prometheus-alertmanager (receives the
# alerts) and softhsm2 (a real PKCS#11 token for the signing tests), as PACKAGE:COMMAND, installed when missing
# and make runs as root with apt-get; otherwise their tests skip, except in CI.
SYSTEM := rsync:rsync prometheus:prometheus prometheus-alertmanager:prometheus-alertmanager softhsm2:softhsm2-util
system-tools:
	@missing=""; for t in $(SYSTEM); do command -v $${t#*:} >/dev/null || missing="$$missing $${t%%:*}"; done; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get install -y -qq $$missing >/dev/null || (apt-get update -qq && apt-get install -y -qq $$missing >/dev/null) || true; fi

# PyTorch for the model-adapter tests: the CPU build this machine keeps on local disk (pinned on purpose)
$(BIN)/.torch: $(BIN)/.installed
	$(BIN)/python -m pip install -q torch==2.13.0
	touch $@

# deepchecks' own environment (numpy 1, pandas 2), for the deepchecks gate's tests
DEEPCHECKS := .cache/deepchecks/mlops-gates-deepchecks.json
$(DEEPCHECKS): $(BIN)/.installed
	$(BIN)/mlops-gates deepchecks setup --path .cache/deepchecks

# Feast's own environment (pandas 2), for the feature-store data source's tests and the Feast demo
FEAST := .cache/feast/mlops-gates-feast.json
$(FEAST): $(BIN)/.installed
	$(BIN)/mlops-gates feast setup --path .cache/feast

# a real MLflow tracking server for the MLflow registry's tests (mlflow pins pyarrow < 26: its own environment)
MLFLOW := .cache/mlflow/.installed
$(MLFLOW):
	$(PYTHON) -m venv .cache/mlflow
	.cache/mlflow/bin/python -m pip install -q mlflow==3.17.2
	touch $@

# Evidently for the speed benchmark (0.7.23 does not import with pandas 3: its own environment)
EVIDENTLY := .cache/evidently/.installed
$(EVIDENTLY):
	$(PYTHON) -m venv .cache/evidently
	.cache/evidently/bin/python -m pip install -q evidently==0.7.23 'pandas<3' pyarrow
	touch $@

# the speed and decision-quality benchmarks (tens of minutes); they rewrite bench/RESULTS*.md
bench: $(BIN)/.installed $(DEEPCHECKS) $(EVIDENTLY)
	$(BIN)/python bench/speed.py
	$(BIN)/python bench/decision_quality.py

test: lint $(NPM) system-tools $(BIN)/.torch $(DEEPCHECKS) $(FEAST) $(MLFLOW) $(WHEELHOUSE)
	$(BIN)/python -m pytest -q

# the fast loop: the package and its test extra only (no torch, Spark, deepchecks, MLflow or npm); under a minute
UNIT := tests/architecture tests/policy tests/stats/test_bootstrap.py tests/stats/test_integrity.py \
	tests/stats/test_metrics.py tests/models/test_scan_threats.py tests/report tests/evaluation/test_api.py
$(BIN)/.unit: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

unit: $(BIN)/.unit
	$(BIN)/python -m pytest -q -p no:cacheprovider $(UNIT)

clean:
	rm -rf $(VENV) .cache gate-out .pytest_cache .mypy_cache .ruff_cache
