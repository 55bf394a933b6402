# Two commands a new user needs: `make demo` and `make test`. Each makes its own virtual environment.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/mlops-gates demo --out gate-out || [ $$? -eq 1 ]  # 1 = HOLD/REJECT: a verdict, not a failure

lint: $(BIN)/.installed
	$(BIN)/ruff check mlops_gates tests examples
	$(BIN)/ruff format --check mlops_gates tests examples
	$(BIN)/mypy mlops_gates

test: lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) gate-out .pytest_cache .mypy_cache .ruff_cache
