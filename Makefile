# The two commands: `make run` starts everything, `make test` runs every test.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
export UV_PYTHON ?= 3.11
# The PostgreSQL server `make test` runs the suite on a second time, when one answers there.
TEST_DATABASE_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test

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

test: lint typecheck ## lint, type-check and run the whole suite on SQLite, then on PostgreSQL
	@echo "== the test suite on SQLite"
	env -u TEST_DATABASE_URL $(PY) -m pytest
	@if $(PY) -m tests.postgres "$(TEST_DATABASE_URL)"; then \
		echo "== the test suite on PostgreSQL ($(TEST_DATABASE_URL))"; \
		TEST_DATABASE_URL="$(TEST_DATABASE_URL)" $(PY) -m pytest; \
	else \
		echo "PostgreSQL not reachable at $(TEST_DATABASE_URL), skipping the PostgreSQL run"; \
	fi

bench: install
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache
