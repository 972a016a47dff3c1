# Developer commands. `make demo` and `make test` work on a fresh machine with only Python:
# each creates .venv and installs sqlqueue into it from a wheel built from this checkout.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet ".[dev]"
	touch $@

.PHONY: install
install: $(VENV)/.deps ## Build a wheel of this checkout and install it into .venv
	$(BIN)/pip install --quiet --no-deps --force-reinstall .

.PHONY: demo-django
demo-django: install ## Run the Django shop: an order, its receipt sent by the worker after the commit
	cd examples/django_shop && rm -f shop.sqlite3 && \
		../../$(BIN)/python manage.py migrate -v 0 && \
		../../$(BIN)/python manage.py place_order ann@example.com 12.50 && \
		../../$(BIN)/python manage.py sqlqueue_worker --burst --concurrency 2 && \
		../../$(BIN)/python manage.py shell -c "from orders.models import Order; [print(o, '- receipt sent at', o.receipt_sent_at) for o in Order.objects.all()]"

.PHONY: demo
demo: install ## Run the demo: the seed's tasks through a worker on the embedded SQLite default
	cd examples/demo && rm -f sqlqueue.db sqlqueue.db-wal sqlqueue.db-shm && \
		../../$(BIN)/sqlqueue migrate && \
		../../$(BIN)/python send_tasks.py && \
		../../$(BIN)/sqlqueue worker -A tasks --burst --concurrency 4 && \
		../../$(BIN)/python show_results.py

.PHONY: demo-celery
demo-celery: install ## Run a Celery project moved over by its imports (examples/celery_port): a worker, then its client
	cd examples/celery_port && rm -f proj.db proj.db-wal proj.db-shm && \
		../../$(BIN)/sqlqueue migrate -A proj && \
		{ ../../$(BIN)/sqlqueue worker -A proj --queues default,emails & worker=$$!; \
		  ../../$(BIN)/python client.py; status=$$?; kill -TERM $$worker; wait $$worker; exit $$status; }

DJANGO_TESTS := DJANGO_SETTINGS_MODULE=django_shop.settings $(BIN)/pytest -o pythonpath=examples/django_shop tests/django

# Django 6 needs Python >= 3.12; the package itself stays on 3.11.
PYTHON_DJANGO6 ?= $(shell for p in python3.12 python3.13 $$HOME/.pyenv/versions/3.1[23]*/bin/python; do \
	"$$p" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null && { command -v "$$p"; break; }; done)
VENV_DJANGO6 ?= .venv-django6
DJANGO6_TESTS := DJANGO_SETTINGS_MODULE=django_shop.settings $(VENV_DJANGO6)/bin/pytest -o pythonpath=examples/django_shop tests/django

.PHONY: test-django6
test-django6: ## The Django tests again on Django 6 (django.tasks), with Python >= 3.12
	@if [ -z "$(PYTHON_DJANGO6)" ]; then \
		echo "No Python >= 3.12 found for the Django 6 tests: set PYTHON_DJANGO6."; \
		if [ -n "$$CI" ]; then exit 1; else echo "Skipping them (they run under CI=true)."; exit 0; fi; \
	fi; \
	[ -x $(VENV_DJANGO6)/bin/python ] || $(PYTHON_DJANGO6) -m venv $(VENV_DJANGO6); \
	$(VENV_DJANGO6)/bin/pip install --quiet ".[test]" "django>=6" && \
	$(VENV_DJANGO6)/bin/pip install --quiet --no-deps --force-reinstall . && \
	$(MAKE) --no-print-directory mysqlclient BIN=$(VENV_DJANGO6)/bin && \
	SHOP_DATABASE=sqlite $(DJANGO6_TESTS) $(PYTEST_ARGS) && \
	SHOP_DATABASE=postgresql $(DJANGO6_TESTS) $(PYTEST_ARGS) && \
	SHOP_DATABASE=mysql $(DJANGO6_TESTS) $(PYTEST_ARGS)

# Django's MySQL backend needs mysqlclient (Django's own requirement; sqlqueue's mysql extra is
# PyMySQL), which builds against the MariaDB/MySQL client library: its headers, pkg-config and
# a compiler are installed when missing and we are root with apt-get. Without it the Django
# tests on MariaDB, and the mysqlclient ones of the suite, skip; under CI=true they fail.
.PHONY: mysqlclient
mysqlclient: | $(BIN)/python ## Install mysqlclient into .venv, and what it builds against when missing (as root)
	@if $(BIN)/python -c 'import MySQLdb' 2>/dev/null; then exit 0; fi; \
	if ! { pkg-config --exists mariadb || pkg-config --exists mysqlclient; } 2>/dev/null \
		|| ! command -v gcc >/dev/null \
		|| ! $(BIN)/python -c 'import os, sysconfig; assert os.path.exists(sysconfig.get_path("include") + "/Python.h")' 2>/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "Installing Debian's libmariadb-dev, pkg-config, gcc and python3-dev to build mysqlclient"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libmariadb-dev pkg-config gcc python3-dev >/dev/null; \
		else \
			echo "mysqlclient cannot be built here (it needs libmariadb-dev, pkg-config and a compiler; as root, apt-get install them): the Django tests on MariaDB will skip."; \
			if [ -n "$$CI" ]; then exit 1; fi; exit 0; \
		fi; \
	fi; \
	$(BIN)/pip install --quiet mysqlclient

# The dashboard's browser test drives Debian's chromium (Playwright cannot download browsers
# here): installed when missing and we are root with apt-get; otherwise the test skips, and
# under CI=true this target fails instead.
.PHONY: browser
browser: ## Install Debian's chromium for the dashboard's browser test, when missing (as root)
	@if [ -x /usr/bin/chromium ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's chromium for the dashboard's browser test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else \
		echo "No /usr/bin/chromium, and not root with apt-get to install it: the dashboard's browser test will skip. Install Debian's chromium (apt-get install chromium chromium-driver) to run it."; \
		if [ -n "$$CI" ]; then exit 1; fi; \
	fi

# The PgBouncer tests (tests/test_pgbouncer.py) start Debian's pgbouncer on a port of their own:
# installed when missing, as chromium is. The package's own service is left alone (a container
# does not start it; a full system runs it on 6432, which the tests do not use).
.PHONY: pgbouncer
pgbouncer: ## Install Debian's pgbouncer for the PgBouncer tests, when missing (as root)
	@if command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's pgbouncer for the PgBouncer tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null; \
	else \
		echo "No pgbouncer, and not root with apt-get to install it: the PgBouncer tests will skip. Install Debian's pgbouncer (apt-get install pgbouncer) to run them."; \
		if [ -n "$$CI" ]; then exit 1; fi; \
	fi

.PHONY: test
test: install browser pgbouncer mysqlclient ## Run the whole test suite, then lint (PostgreSQL and MariaDB tests skip when unreachable, fail under CI=true)
	$(BIN)/pytest $(PYTEST_ARGS)
	$(MAKE) test-install
	SHOP_DATABASE=sqlite $(DJANGO_TESTS) $(PYTEST_ARGS)
	SHOP_DATABASE=postgresql $(DJANGO_TESTS) $(PYTEST_ARGS)
	SHOP_DATABASE=mysql $(DJANGO_TESTS) $(PYTEST_ARGS)
	$(MAKE) test-django6
	$(MAKE) lint

# Two hosts made of network namespaces, one cut off from the network and back: needs root and
# iproute2 (skips without them, fails under CI=true). `make test` runs it too, in the suite.
.PHONY: test-hosts
test-hosts: install ## Workers on two network namespaces sharing PostgreSQL, one host cut off and back (root)
	$(BIN)/pytest -m hosts tests/test_hosts.py $(PYTEST_ARGS)

INSTALL_CHECK := build/install-check
INSTALL_EXTRAS := bare async metrics dashboard django mysql async,mysql

.PHONY: test-install
test-install: $(BIN)/python ## Install the wheel bare and with each extra into new virtualenvs, and use each
	rm -rf $(INSTALL_CHECK)
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir $(INSTALL_CHECK)/wheel .
	set -e; wheel=$$(ls $(INSTALL_CHECK)/wheel/sqlqueue-*.whl); \
	for extra in $(INSTALL_EXTRAS); do \
		echo "== pip install sqlqueue$$([ $$extra = bare ] || echo "[$$extra]") into a new virtualenv"; \
		$(PYTHON) -m venv $(INSTALL_CHECK)/$$extra; \
		$(INSTALL_CHECK)/$$extra/bin/pip install --quiet "$$wheel$$([ $$extra = bare ] || echo "[$$extra]")"; \
		$(INSTALL_CHECK)/$$extra/bin/python scripts/check_install.py $$extra; \
	done

.PHONY: bench
bench: install ## Run the benchmark on the local PostgreSQL (BENCH_ARGS="--url sqlite:////tmp/b.db" for SQLite)
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

.PHONY: stress-mysql
stress-mysql: install ## Issue 17's stress run on the local MariaDB: 100,000 jobs, 16 claimers, kills (STRESS_ARGS="--jobs 20000")
	$(BIN)/python benchmarks/mysql_stress.py $(STRESS_ARGS)

.PHONY: lint
lint: $(VENV)/.deps ## ruff and mypy --strict
	$(BIN)/ruff check sqlqueue migrations tests examples scripts benchmarks
	$(BIN)/ruff format --check sqlqueue migrations tests examples scripts benchmarks
	$(BIN)/mypy

.PHONY: format
format: $(VENV)/.deps ## Format the code with ruff
	$(BIN)/ruff check --fix sqlqueue migrations tests examples scripts benchmarks
	$(BIN)/ruff format sqlqueue migrations tests examples scripts benchmarks

.PHONY: clean
clean: ## Remove the virtualenv and build leftovers
	rm -rf $(VENV) $(VENV_DJANGO6) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
