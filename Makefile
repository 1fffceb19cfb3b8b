# The one task runner. README, CI (.ci/run) and docs use these same targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# ./xmodal runs `python -m cli` from this checkout, even when another clone set up the shared venv last
XMODAL := ./xmodal

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

setup: ## Python environment (cached outside the clone) + chromium for browser tests; idempotent
	@scripts/setup.sh

install-stack: setup ## fetch Kafka jars and build weaviate-server (cached; first time 2-3 min)
	@$(XMODAL) stack install

up: install-stack ## start the local Kafka + Weaviate on 127.0.0.1 (restarts a crashed one)
	@$(XMODAL) stack up

down: ## stop the local stack, the worker and the gateway started by `make demo`; leaves no process
	@if [ -x $(PY) ]; then $(XMODAL) demo --stop; $(XMODAL) stack down; fi

status: ## health of the local stack
	@$(XMODAL) stack status

demo: up ## run xmodal locally: stack + worker + gateway, publish the sample sets, offline
	@$(XMODAL) demo

lint: setup ## ruff, mypy (strict) and the import contracts (import-linter, see pyproject.toml)
	@$(VENV)/bin/ruff check schemas services streams cli tests bench
	@$(VENV)/bin/mypy
	@$(VENV)/bin/lint-imports --no-cache

test: lint install-stack ## setup + lint + real Kafka/Weaviate + unit, integration and e2e tests
	@$(PY) -m pytest tests

bench: up ## throughput and freshness benchmarks (a table + bench/results/latest.json)
	@$(PY) -m bench.run

clean-stack: down ## delete the local stack's data (topics, collections); caches are kept
	@$(PY) -c 'from services.config import StackSettings; import shutil; shutil.rmtree(StackSettings().state_dir, ignore_errors=True)'

.PHONY: help setup install-stack up down status demo lint test bench clean-stack
