# The two commands: `make run` starts everything, `make test` runs every test.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
export UV_PYTHON ?= 3.11

.PHONY: run test lint format typecheck bench install clean

$(UV):
	python3 -m pip install --quiet --target .tools "uv>=0.13,<0.14"

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	touch $@

install: $(VENV)/.synced

run: install ## start Redis (or an embedded Valkey), Chroma, the API and $${WORKERS:-1} workers
	$(PY) -m scripts.devserver

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: install
	$(VENV)/bin/mypy .

test: lint typecheck ## lint, type-check and run the whole test suite
	$(PY) -m pytest

bench: install
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache
