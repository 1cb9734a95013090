# Two commands on a fresh machine: `make demo` and `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
SERVER  := $(VENV)/.installed-server
DEV     := $(VENV)/.installed-dev
SOURCES := src tests bench examples

# The PostgreSQL contract tests run here; with CI=true an unreachable server fails them.
export MODELPACT_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: demo test lint format install clean

$(VENV)/bin/python:
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(SERVER): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e '.[server]'
	touch $@

$(DEV): pyproject.toml $(SERVER)
	$(PY) -m pip install --quiet -e '.[server,dev]'
	touch $@

install: $(DEV)

demo: $(SERVER)
	bash scripts/demo.sh

lint: $(DEV)
	$(VENV)/bin/ruff check $(SOURCES)
	$(VENV)/bin/ruff format --check $(SOURCES)
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: lint
	$(VENV)/bin/pytest -n 2 -q

format: $(DEV)
	$(VENV)/bin/ruff check --fix $(SOURCES)
	$(VENV)/bin/ruff format $(SOURCES)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
