# Plain make wrappers around the project's commands. They use ./.venv when it exists (no need
# to activate it); override the interpreter with  make test PYTHON=/path/to/venv/bin/python
VENV_BIN := $(wildcard .venv/bin)
PYTHON ?= $(if $(VENV_BIN),.venv/bin/python,python)
STOCKPIPE ?= $(if $(VENV_BIN),.venv/bin/stockpipe,stockpipe)
CONFIG ?= conf/

.PHONY: help install install-test train tune score backtest serve monitor fetch validate test bench lint format clean lock compose-validate compose-up compose-down

help:
	@echo "targets: install install-test train tune score backtest serve monitor fetch validate test bench lint format clean lock compose-validate compose-up compose-down"

install:
	$(PYTHON) -m pip install -c constraints.txt -e .

install-test:
	$(PYTHON) -m pip install -c constraints.txt -e ".[test]"

train:
	$(STOCKPIPE) train --config $(CONFIG)

tune:
	$(STOCKPIPE) tune --config $(CONFIG)

score:
	$(STOCKPIPE) score --config $(CONFIG)

backtest:
	$(STOCKPIPE) backtest --config $(CONFIG) --output-dir outputs/backtest

# Needs network access to Yahoo:  make fetch TICKERS=NVDA,SPY
TICKERS ?= NVDA,SPY
fetch:
	$(STOCKPIPE) fetch --config $(CONFIG) --tickers $(TICKERS)

validate:
	$(STOCKPIPE) validate --config $(CONFIG)

# The champion over HTTP on $(HOST):$(PORT); it follows the alias (reloads on promotion).
HOST ?= 127.0.0.1
PORT ?= 8000
serve:
	$(STOCKPIPE) serve --config $(CONFIG) --host $(HOST) --port $(PORT)

# Drift, live performance and service health; exit code 3 on alert, 4 if tracking fails.
monitor:
	$(STOCKPIPE) monitor --config $(CONFIG) --output-dir outputs/monitor

test:
	$(PYTHON) -m pytest

bench:
	$(PYTHON) -m pytest benchmarks/

lint:
	$(PYTHON) -m ruff check . && $(PYTHON) -m ruff format --check . && $(PYTHON) -m mypy

format:
	$(PYTHON) -m ruff format . && $(PYTHON) -m ruff check --fix .

# Re-resolve the newest versions pyproject allows into constraints.txt (the lock every install,
# CI and the Dockerfile use). Run the whole test suite against it before committing the lock.
lock:
	./.ci/lock

# Removes local runs, outputs and the DuckDB warehouse (all rebuilt on the next train).
# Does not touch docker/postgres/data or docker/mlflow/artifacts (the compose server's data).
clean:
	rm -rf mlruns mlflow.db outputs data/warehouse
	rm -rf .pytest_cache .mypy_cache .ruff_cache .benchmarks
	find . -name __pycache__ -type d -not -path "./.git/*" -not -path "./.venv/*" -not -path "./venv/*" -prune -exec rm -rf {} +

# The Postgres-backed MLflow server (PROFILE=minio adds MinIO artifacts); needs Docker.
PROFILE ?=
compose-up:
	docker compose $(if $(PROFILE),--profile $(PROFILE)) up -d --build

compose-down:
	docker compose $(if $(PROFILE),--profile $(PROFILE)) down

# Offline check of docker-compose.yml against the compose spec (no Docker engine needed).
compose-validate:
	$(PYTHON) -m check_jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
