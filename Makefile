# The two commands of the README (`make demo`, `make test`) work on a fresh machine: each one
# creates .venv and installs what it needs first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check bench venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e . --group dev
	touch $@

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/otel-bridge demo

test: $(STAMP)
	scripts/test

check: $(STAMP)
	scripts/check

bench: $(STAMP)
	scripts/system-deps wrk golang-go
	$(BIN)/python -m benchmarks --write

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage dist
