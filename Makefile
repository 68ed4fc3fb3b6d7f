# crm-automation: one entry point for installing, running and testing.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install tools run test test-unit test-integration test-reliability lint stack-up stack-down clean \
	bench bench-quick bench-check diagrams plots

install: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/crm-automation stack fetch
	touch $(STAMP)

## The main job: embedded Kafka, Postgres and Radicale, every processor, the demo scenario.
run: install
	$(BIN)/crm-automation run --demo

## Everything CI runs: lint, types, unit and integration tests on the real local stack.
## Its own --basetemp, like test-reliability: every pytest session on the machine makes
## /tmp/pytest-of-<user> private again (0700) and prunes its old dirs, and as root the
## stack's Postgres runs as a system user who then cannot reach its data (it died of it).
test: install lint tools
	mkdir -p build
	$(BIN)/pytest -q -m "not reliability" --basetemp=build/test-tmp tests

## Fault-injection scenarios (restarts of Postgres, Kafka, processors under load), on a
## stack of their own (never a shared one: they kill it); the table goes to RELIABILITY.md.
test-reliability: install
## Its own --basetemp: pytest deletes all but the 3 newest default temp dirs, and other
## sessions on the machine would delete the running stack's data (Postgres died of it).
	mkdir -p build
	env -u CRM_AUTOMATION_KAFKA_BOOTSTRAP_SERVERS -u CRM_AUTOMATION_DATABASE_URL \
	    -u CRM_AUTOMATION_CALDAV_URL $(BIN)/pytest -q -m reliability \
	    --basetemp=build/reliability-tmp tests

test-unit: install
	$(BIN)/pytest -q tests/unit

test-integration: install
	mkdir -p build
	$(BIN)/pytest -q -m integration --basetemp=build/integration-tmp tests

## Tools the tests need beyond Python, installed from Debian packages when missing:
## promtool (package prometheus) for the alert rules, docker-compose (1.29) to validate
## docker-compose.yml without a Docker daemon.
tools:
	scripts/ensure-tool promtool prometheus
	scripts/ensure-tool docker-compose docker-compose

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache --no-logo

stack-up: install
	$(BIN)/crm-automation stack up

stack-down: install
	$(BIN)/crm-automation stack down

## Benchmarks (issue 8): every scenario on one local stack, tables + bench/results/*.json.
bench: install
	$(BIN)/python bench/run_all.py

## All scenarios in quick mode (under 3 minutes).
bench-quick: install
	$(BIN)/python bench/run_all.py --quick

## Quick run compared to bench/reference.json: fails on a ratio drop of more than 25 %.
bench-check: install
	$(BIN)/python bench/run_all.py --quick --check bench/reference.json

## docs/img/architecture.svg from scripts/architecture_diagram.py (a unit test checks it is current).
diagrams: install
	$(BIN)/python scripts/architecture_diagram.py

## BENCHMARKS.md's plots in docs/img/, redrawn from the newest bench/results/ JSON (no benchmark run).
plots: install
	$(BIN)/python bench/plots.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
