# The two commands that matter: `make run` and `make test`. See README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_PATIENTS ?= 2000
PYTEST_ARGS ?=
# Tests and the dev server may run against a DATABASE_URL without a production key.
export MPI_ALLOW_DEV_SECRET_KEY ?= true

.DEFAULT_GOAL := help
.PHONY: help install db db-stop db-status migrate demo run test lint format bench-search clean

help:
	@echo "make run        set everything up and serve the app with demo data on http://$(HOST):$(PORT)"
	@echo "make test       set everything up and run the whole test suite"
	@echo "make db-stop    stop the project-local PostgreSQL cluster"
	@echo "make lint       ruff check + format check"
	@echo "make bench-search  search/candidate-retrieval benchmark (N=100000 by default)"

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

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache
