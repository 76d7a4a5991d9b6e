# mpac-warehouse: every verb runs inside .venv, which `install` builds from pyproject.toml + uv.lock.
.DEFAULT_GOAL := help
SHELL := bash

UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
RUN := $(UV) run --frozen --no-sync
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export DO_NOT_TRACK := 1

.PHONY: help install test test-unit test-integration test-chaos lint format demo bench docs clean clean-data

help: ## List the make targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# uv is bootstrapped into its own venv so the machine needs nothing but python3.
$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# The stamp makes `install` a no-op until the lock file or pyproject changes.
$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	@touch $@

install: $(VENV)/.installed ## Create .venv with everything the project needs (idempotent)

test: install ## Run the test suite (unit, integration, dbt); the kill -9 matrix is test-chaos
	$(RUN) pytest -n 3 --dist loadgroup -m "not chaos"

test-unit: install ## Run the unit tests only (seconds)
	$(RUN) pytest -m "not integration"

test-integration: install ## Run the integration tests only (simulator, pipeline, dbt)
	$(RUN) pytest -n 3 --dist loadgroup -m "integration and not chaos"

test-chaos: install ## kill -9 whole runs at 14 points, then a normal run: warehouse = ground truth
	$(RUN) pytest -n 2 --dist loadgroup -m chaos

lint: install ## Style (ruff, sqlfluff), package boundaries (import-linter) and types (mypy)
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) sqlfluff lint dbt/models dbt/tests
	$(RUN) lint-imports
	$(RUN) mypy

format: install ## Format Python in place
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

demo: install ## Run the whole pipeline against the local simulator and print the results
	$(RUN) python -m pipelines.tools.demo

bench: install ## Pipeline vs DuckDB read_json on medium + large vendors (prints a table, asserts nothing; SIZES=medium to shorten, BENCH_ARGS="--keep DIR --no-postgres")
	$(RUN) python -m pipelines.tools.bench --sizes $(or $(SIZES),medium,large) $(BENCH_ARGS)

docs: install ## dbt docs of the demo warehouse (or MPAC_WAREHOUSE=...) as one static HTML page
	@$(RUN) mpac docs --warehouse "$(or $(MPAC_WAREHOUSE),data/demo.duckdb)"

# Never the warehouse: its version history is what the API can never give back (clean-data).
clean: ## Remove build output (venv, dbt target and logs, caches); keeps data/
	rm -rf $(VENV) $(TOOLS) dbt/target dbt/logs .pytest_cache .ruff_cache .mypy_cache

clean-data: ## Delete the warehouse in data/ and its run state (says what it deletes)
	@if [ -d data ]; then \
		echo "deleting data/: the warehouse, its version history and the pipeline state:"; \
		find data -maxdepth 1 -mindepth 1 -printf '  %p\n'; \
		rm -rf data; \
	else echo "nothing to delete: there is no data/ folder"; fi
