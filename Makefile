# The verbs a person types. `make demo` is the main job; `make test` runs the whole suite.
# Both create .venv on first use (Python 3.11+) and install the project into it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONUNBUFFERED := 1

.DEFAULT_GOAL := help
.PHONY: help venv demo loadtest test export verify data serve serve-status serve-down gateway bench-gateway k8s-check lint format clean clean-store

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (found " + sys.version.split()[0] + "); set PYTHON=/path/to/python3.11")'
	@echo "==> Creating $(VENV) and installing the project (TensorFlow, PyTorch, TorchServe; about 2 minutes the first time)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --progress-bar off -e '.[serving,gateway,loadtests,k8s,dev]'
	@touch $@

venv: $(STAMP)  ## create .venv and install everything

demo: $(STAMP)  ## main job: data -> train/export (or reuse) -> verify -> servers + gateway -> short comparison -> report
	$(BIN)/python -m exporters demo
	$(BIN)/python -m loadtests compare --start --preset demo

LOADTEST_ARGS ?= --start
loadtest: $(STAMP)  ## the full comparison (docs/benchmarking.md; ~20 min); LOADTEST_ARGS="..." replaces --start
	$(BIN)/python -m loadtests compare $(LOADTEST_ARGS)

test: $(STAMP)  ## run the whole test suite
	$(BIN)/python -m pytest

export: $(STAMP)  ## always train both models and export a new version N+1
	$(BIN)/python -m exporters export

verify: $(STAMP)  ## verify the latest version in the store
	$(BIN)/python -m exporters verify

data: $(STAMP)  ## fetch, verify and cache MNIST
	$(BIN)/python -m exporters data

serve: $(STAMP)  ## start TorchServe and TF Serving (or its named stand-in) on the store; wait until ready
	$(BIN)/python -m serving up

serve-status: $(STAMP)  ## each server's versions and readiness
	$(BIN)/python -m serving status

serve-down: $(STAMP)  ## stop every server `make serve` started (workers included)
	$(BIN)/python -m serving down

gateway: $(STAMP)  ## run the gateway (gunicorn): to `make serve`'s servers if running, else in-process models
	@if [ -z "$$GATEWAY_ROUTING_FILE" ] && ls run/pids/*.json >/dev/null 2>&1; then \
	  echo "==> servers of 'make serve' are running: routing with gateway/routing.yaml"; \
	  GATEWAY_ROUTING_FILE=gateway/routing.yaml $(BIN)/python -m gateway; \
	else \
	  echo "==> no servers of 'make serve' (or GATEWAY_ROUTING_FILE set): see the routing in the log below"; \
	  $(BIN)/python -m gateway; \
	fi

BENCH_ARGS ?=
bench-gateway: $(STAMP)  ## the gateway's cost per backend: added latency, throughput ratio, CPU/request, batching, profile (~7 min)
	$(BIN)/python -m loadtests bench-gateway $(BENCH_ARGS)

lint: $(STAMP)  ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

k8s-check: $(STAMP)  ## validate k8s/ and the Dockerfile offline: kustomize, kubernetes-validate --strict, yamllint, hadolint, policy tests
	@$(BIN)/kubectl version --client && $(BIN)/kubernetes-validate --version && $(BIN)/hadolint --version && $(BIN)/yamllint --version
	$(BIN)/python -m pytest tests/k8s -v

format: $(STAMP)  ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:  ## remove caches (keeps .venv and the model store)
	rm -rf .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +

clean-store:  ## delete every exported version (asks first)
	@read -p "Delete model_store/artifacts? [y/N] " answer && [ "$$answer" = y ] && rm -rf model_store/artifacts || true
