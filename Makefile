# The one task runner. README, CI (.ci/run) and docs use these same targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# ./xmodal runs `python -m cli` from this checkout, even when another clone set up the shared venv last
XMODAL := ./xmodal
# `make up NODES=3`: a local cluster of 3 Kafka brokers and 3 Weaviate nodes (xmodal stack --help)
STACK_NODES := $(if $(NODES),--nodes $(NODES))

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

setup: ## Python environment (cached outside the clone) + chromium for browser tests; idempotent
	@scripts/setup.sh

install-stack: setup ## fetch Kafka jars, build weaviate-server and toxiproxy-server (cached; first time 2-3 min)
	@$(XMODAL) stack install

up: install-stack ## start the local Kafka + Weaviate on 127.0.0.1 (restarts a crashed one)
	@$(XMODAL) stack up $(STACK_NODES)

down: ## stop the local stack, the worker and the gateway started by `make demo`; leaves no process
	@if [ -x $(PY) ]; then $(XMODAL) demo --stop; $(XMODAL) stack down; fi

status: ## health of the local stack
	@$(XMODAL) stack status $(STACK_NODES)

demo: up ## run xmodal locally: stack + worker + gateway, publish the sample sets, offline
	@$(XMODAL) demo

lint: setup ## ruff, mypy (strict), the import contracts (import-linter, see pyproject.toml), the k8s manifests
	@$(VENV)/bin/ruff check schemas services streams cli tests bench
	@$(VENV)/bin/mypy
	@$(VENV)/bin/lint-imports --no-cache
	@# deploy/k8s against the Kubernetes schemas (offline); a warning (an unknown kind) fails too. The KEDA CRD
	@# and the kustomization have no schema there: tests/unit/deploy/test_k8s.py checks them.
	@out=$$($(VENV)/bin/kubernetes-validate --strict --quiet $(filter-out %/kustomization.yaml %/worker-scaledobject.yaml,$(wildcard deploy/k8s/*.yaml)) 2>&1) && [ -z "$$out" ] \
	  || { echo "$$out" >&2; echo "kubernetes-validate: deploy/k8s is not valid" >&2; exit 1; }

test: lint install-stack ## setup + lint + real Kafka/Weaviate + unit, integration and e2e tests
	@$(PY) -m pytest tests

soak: lint install-stack ## long fault runs: 30 s outages, a 20k backlog behind a slow store, 10 kills, 3+3 cluster
	@XMODAL_SOAK=1 $(PY) -m pytest -m "integration or soak" tests/integration/resilience tests/integration/cluster

bench: up ## ingest, freshness, gateway and memory benchmarks (a table + bench/results/latest.json); SCALE=1 adds growth
	@$(PY) -m bench.run $(if $(filter 1,$(SCALE)),--growth)

clean-stack: down ## delete the local stack's data (topics, collections); caches are kept
	@$(PY) -c 'from services.config import StackSettings; import shutil; shutil.rmtree(StackSettings().state_dir, ignore_errors=True)'

.PHONY: help setup install-stack up down status demo lint test soak bench clean-stack
