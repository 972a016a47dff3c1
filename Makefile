# Developer commands. `make demo` and `make test` work on a fresh machine with only Python:
# each creates .venv and installs sqlqueue into it from a wheel built from this checkout.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet ".[dev]"
	touch $@

.PHONY: install
install: $(VENV)/.deps ## Build a wheel of this checkout and install it into .venv
	$(BIN)/pip install --quiet --no-deps --force-reinstall .

.PHONY: demo
demo: install ## Run the demo: the seed's tasks through a worker on the embedded SQLite default
	cd examples/demo && rm -f sqlqueue.db sqlqueue.db-wal sqlqueue.db-shm && \
		../../$(BIN)/sqlqueue migrate && \
		../../$(BIN)/python send_tasks.py && \
		../../$(BIN)/sqlqueue worker -A tasks --burst --concurrency 4 && \
		../../$(BIN)/python show_results.py

.PHONY: test
test: install ## Run the whole test suite, then lint (PostgreSQL tests skip when it is unreachable, fail under CI=true)
	$(BIN)/pytest $(PYTEST_ARGS)
	$(MAKE) lint

.PHONY: lint
lint: $(VENV)/.deps ## ruff and mypy --strict
	$(BIN)/ruff check sqlqueue migrations tests examples scripts
	$(BIN)/ruff format --check sqlqueue migrations tests examples scripts
	$(BIN)/mypy

.PHONY: format
format: $(VENV)/.deps ## Format the code with ruff
	$(BIN)/ruff check --fix sqlqueue migrations tests examples scripts
	$(BIN)/ruff format sqlqueue migrations tests examples scripts

.PHONY: clean
clean: ## Remove the virtualenv and build leftovers
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
