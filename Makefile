# The two commands that matter: `make run` and `make test`. See README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_PATIENTS ?= 1000
PYTEST_ARGS ?=
# make bench-search N=1000000 (BENCH_LOAD=--reuse re-measures the last load)
N ?= 100000
PROBES ?= 1000
SEED ?= 1
BENCH_DB ?= mpi_bench
BENCH_LOAD ?= --fresh
# Tests and the dev server may run against a DATABASE_URL without a production key.
export MPI_ALLOW_DEV_SECRET_KEY ?= true

.DEFAULT_GOAL := help
.PHONY: help install db db-stop db-status migrate demo run test fuzz-api lint format bench-search bench-match clean

help:
	@echo "make run        set everything up and serve the app with demo data on http://$(HOST):$(PORT)"
	@echo "make test       set everything up and run the whole test suite"
	@echo "make db-stop    stop the project-local PostgreSQL cluster"
	@echo "make fuzz-api   longer schemathesis run over the REST API (FUZZ_EXAMPLES=300 per operation)"
	@echo "make lint       ruff check + format check"
	@echo "make bench-search  search/candidate-retrieval benchmark (N=100000 by default)"
	@echo "make bench-match   matcher accuracy vs Splink on FEBRL + demo truth (docs/bench-match.md)"

# A virtualenv with the pinned dependencies; rebuilt when the requirements change.
$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "python3-venv is missing: installing it"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; \
	    $(PYTHON) -m venv $(VENV); \
	  else echo "Cannot create a virtualenv: install python3-venv" >&2; exit 1; fi; }
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $@

install: $(STAMP)

# With DATABASE_URL unset, a project-local cluster in .pgdata/ (Unix socket only).
db:
	@if [ -z "$$DATABASE_URL" ]; then $(PYTHON) -m mpi.localdb start; else echo "Using DATABASE_URL"; fi

db-stop:
	@$(PYTHON) -m mpi.localdb stop

db-status:
	@$(PYTHON) -m mpi.localdb status

migrate: install db
	$(BIN)/python manage.py migrate --noinput -v0

demo: migrate
	$(BIN)/python manage.py seed_demo --patients $(DEMO_PATIENTS) --seed 1 --if-empty
	$(BIN)/python manage.py create_demo_users

run: demo
	$(BIN)/python manage.py collectstatic --noinput -v0
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

test: install db
	$(BIN)/pytest $(PYTEST_ARGS)

FUZZ_EXAMPLES ?= 300
fuzz-api: install db
	MPI_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest tests/patients/api/test_schema.py -k conforms $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Loads N synthetic patients into its own database ($(BENCH_DB)), then prints timings and recall.
bench-search: migrate
	$(BIN)/python manage.py bench_search --database $(BENCH_DB) $(BENCH_LOAD) \
	  --patients $(N) --probes $(PROBES) --seed $(SEED)

# Matcher accuracy against Splink (docs/bench-match.md). Runs in its own database
# $(MATCH_DB), dropped and re-created each time: a sibling of DATABASE_URL's, or in the
# local cluster. MATCH_LATENCY_N=100000 also times match_patient over that many patients.
MATCH_DB ?= mpi_bench_match
MATCH_DATASETS ?= febrl1,febrl2,febrl3,febrl4,demo
MATCH_DEMO_N ?= 10000
MATCH_LATENCY_N ?= 0
MATCH_JSON ?= var/bench-match.json
bench-match: migrate
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-bench.txt
	@base="$${DATABASE_URL:-$$($(BIN)/python -m mpi.localdb url)}"; \
	sibling() { echo "$$base" | sed -E "s#/[^/?]*(\?.*)?\$$#/$$1\1#"; }; \
	psql "$$(sibling postgres)" -q -c 'DROP DATABASE IF EXISTS $(MATCH_DB)' -c 'CREATE DATABASE $(MATCH_DB)' && \
	DATABASE_URL="$$(sibling $(MATCH_DB))" $(BIN)/python manage.py migrate --noinput -v0 && \
	DATABASE_URL="$$(sibling $(MATCH_DB))" $(BIN)/python manage.py bench_match --datasets $(MATCH_DATASETS) \
	  --demo-patients $(MATCH_DEMO_N) --latency-patients $(MATCH_LATENCY_N) --json $(MATCH_JSON)

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache
