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

# The C core, rebuilt in place when its source changes (hatch_build.py; without a compiler
# the package runs its Python code).
SPEEDUPS := $(VENV)/.speedups
$(SPEEDUPS): otel_bridge/_speedups.c hatch_build.py $(STAMP)
	$(BIN)/python hatch_build.py || echo "otel-bridge: C core not built, Python code used"
	touch $@

venv: $(STAMP) $(SPEEDUPS)

demo: $(STAMP) $(SPEEDUPS)
	$(BIN)/otel-bridge demo

test: $(STAMP) $(SPEEDUPS)
	scripts/test

check: $(STAMP) $(SPEEDUPS)
	scripts/check

bench: $(STAMP) $(SPEEDUPS)
	scripts/system-deps wrk golang-go
	$(BIN)/python -m benchmarks --write

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage dist
