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
.PHONY: help install db db-stop db-status migrate demo run test fuzz-api fuzz-fhir faults lint format bench-search bench-match bench-batch bench clean

help:
	@echo "make run        set everything up and serve the app with demo data on http://$(HOST):$(PORT)"
	@echo "make test       set everything up and run the whole test suite"
	@echo "make db-stop    stop the project-local PostgreSQL cluster"
	@echo "make fuzz-api   longer schemathesis run over the REST API, random seed (FUZZ_EXAMPLES=300 per operation)"
	@echo "make fuzz-fhir  longer hypothesis run over the FHIR API, random seed (FHIR_FUZZ_EXAMPLES=500 per test)"
	@echo "make faults     longer fault run: worker kills, killed imports, random concurrent writes"
	@echo "make lint       ruff check + format check"
	@echo "make bench-search  search/candidate-retrieval benchmark (N=100000 by default)"
	@echo "make bench-match   matcher accuracy vs Splink on FEBRL + demo truth (docs/bench-match.md)"
	@echo "make bench-import  import_patients throughput on N generated CSV records (docs/import.md)"
	@echo "make bench-batch   time find_duplicates over N patients (N=100000; docs/batch-commands.md)"
	@echo "make bench         the whole-system benchmark: import, latency, throughput, RSS vs targets (docs/bench.md)"

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
	MPI_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) MPI_FUZZ_RANDOM=1 $(BIN)/pytest tests/patients/api/test_schema.py -k conforms $(PYTEST_ARGS)

FHIR_FUZZ_EXAMPLES ?= 500
fuzz-fhir: install db
	MPI_FUZZ_EXAMPLES=$(FHIR_FUZZ_EXAMPLES) MPI_FUZZ_RANDOM=1 $(BIN)/pytest tests/fhir/test_fuzz.py -k survive $(PYTEST_ARGS)

# Longer fault runs (README "Fault tests"): more worker kills, more random operations.
FAULT_KILLS ?= 50
FAULT_OPS ?= 2000
FAULT_IMPORT_ROWS ?= 2000
FAULT_SEED ?=
faults: install db
	MPI_FAULT_KILLS=$(FAULT_KILLS) MPI_FAULT_OPS=$(FAULT_OPS) MPI_FAULT_IMPORT_ROWS=$(FAULT_IMPORT_ROWS) \
	  MPI_FAULT_SEED=$(FAULT_SEED) $(BIN)/pytest tests/faults -s $(PYTEST_ARGS)

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

# find_duplicates over N synthetic patients in a database of its own (loaded once, when
# empty; BATCH_LOAD=--fresh reloads): pairs, seconds per phase, grades, planted recall.
BATCH_DB ?= mpi_bench_batch
BATCH_LOAD ?=
bench-batch: migrate
	$(BIN)/python manage.py bench_batch --database $(BATCH_DB) $(BATCH_LOAD) --patients $(N) --seed $(SEED)

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

# import_patients throughput (docs/import.md): N demo patients as a CSV file, imported with
# --no-match and then with matching, each into a fresh database $(IMPORT_DB) (a sibling of
# DATABASE_URL's, or in the local cluster). IMPORT_MODES="--no-match" runs one of them.
IMPORT_DB ?= mpi_bench_import
IMPORT_MODES ?= --no-match --match
bench-import: migrate
	@mkdir -p var
	$(BIN)/python manage.py shell -c "from patients.importing.benchdata import write_demo_csv; \
	  write_demo_csv($(N), $(SEED), 'var/bench-import-$(N).csv')"
	@base="$${DATABASE_URL:-$$($(BIN)/python -m mpi.localdb url)}"; \
	sibling() { echo "$$base" | sed -E "s#/[^/?]*(\?.*)?\$$#/$$1\1#"; }; \
	for mode in $(IMPORT_MODES); do \
	  psql "$$(sibling postgres)" -q -c 'DROP DATABASE IF EXISTS $(IMPORT_DB)' -c 'CREATE DATABASE $(IMPORT_DB)' && \
	  DATABASE_URL="$$(sibling $(IMPORT_DB))" $(BIN)/python manage.py migrate --noinput -v0 && \
	  echo "== import_patients $$mode, $(N) records; $$(uptime | sed 's/.*load/load/')" && \
	  DATABASE_URL="$$(sibling $(IMPORT_DB))" $(BIN)/python manage.py import_patients \
	    var/bench-import-$(N).csv $$mode --allow-unidentified --rejects var/bench-import.rejects.csv \
	    || exit 1; \
	done

# The whole-system benchmark (docs/bench.md): N synthetic patients written to a CSV and
# imported into $(BENCH_DB) (dropped and re-created), find_duplicates, then latency,
# throughput and worker RSS against gunicorn on loopback; one table, var/bench.json.
# Throughput uses Debian's wrk (installed here when root), else a Python client.
BENCH_ARGS ?=
bench: migrate
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; } || \
	  echo "wrk is not installed: throughput is measured with the Python load generator"
	$(BIN)/python manage.py bench --patients $(N) --seed $(SEED) --database $(BENCH_DB) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache
