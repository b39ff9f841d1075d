# The verbs a person types. `make demo` is the main job; `make test` runs the whole suite.
# Both create .venv on first use (Python 3.11+) and install the project into it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONUNBUFFERED := 1

.DEFAULT_GOAL := help
.PHONY: help venv demo loadtest test test-tools export verify data serve serve-status serve-down gateway bench-gateway soak k8s-check lint audit _audit format clean clean-store

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
SWEEP_ARGS ?=
loadtest: $(STAMP)  ## the full comparison with every capacity search, then the batching sweep (docs/benchmarking.md; ~1 h)
	$(BIN)/python -m loadtests compare $(LOADTEST_ARGS)
	$(BIN)/python -m loadtests sweep $(SWEEP_ARGS)

test: $(STAMP) test-tools  ## run the whole test suite
	$(BIN)/python -m pytest

# Debian packages some tests drive: Chromium + its driver (tests/browser) and promtool (the `prometheus`
# package: tests/k8s/test_monitoring.py). Installed where we may (root, or sudo without a password);
# anywhere else those tests are skipped and say why.
TEST_TOOLS := chromium:chromium chromedriver:chromium-driver promtool:prometheus
test-tools:  ## install the Debian packages some tests need (Chromium, chromedriver, promtool), root or sudo
	@missing=""; for pair in $(TEST_TOOLS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || command -v $${pair%%:*}-browser >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; \
	done; \
	if [ -z "$$missing" ]; then \
	  :; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
	  echo "==> missing$$missing and no apt-get: the tests that need them will be skipped"; \
	else \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi; \
	  if [ "$$SUDO" = none ]; then \
	    echo "==> missing$$missing: the tests that need them will be skipped (sudo apt-get install$$missing)"; \
	  else \
	    echo "==> installing$$missing for the tests (Debian packages)"; \
	    { $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        --no-install-recommends $$missing >/dev/null; } \
	      || echo "==> could not install$$missing: the tests that need them will be skipped"; \
	  fi; \
	fi

export: $(STAMP)  ## always train both models and export a new version N+1
	$(BIN)/python -m exporters export

verify: $(STAMP)  ## verify the latest version in the store
	$(BIN)/python -m exporters verify

data: $(STAMP)  ## fetch, verify and cache MNIST
	$(BIN)/python -m exporters data

serve: $(STAMP)  ## start TorchServe, TF Serving (or its named stand-in), Triton and Prometheus on 127.0.0.1; wait until ready
	$(BIN)/python -m serving up

serve-status: $(STAMP)  ## each server's versions and readiness; Prometheus's targets
	$(BIN)/python -m serving status

serve-down: $(STAMP)  ## stop every server `make serve` started (workers included)
	$(BIN)/python -m serving down

gateway: $(STAMP)  ## run the gateway (granian; HTTP :8000, gRPC :8001): to `make serve`'s servers if running, else in-process models
	@if [ -z "$$GATEWAY_ROUTING_FILE" ] && ls run/pids/*.json >/dev/null 2>&1; then \
	  echo "==> servers of 'make serve' are running: routing with gateway/routing.yaml"; \
	  GATEWAY_ROUTING_FILE=gateway/routing.yaml $(BIN)/python -m gateway; \
	else \
	  echo "==> no servers of 'make serve' (or GATEWAY_ROUTING_FILE set): see the routing in the log below"; \
	  $(BIN)/python -m gateway; \
	fi

BENCH_ARGS ?=
bench-gateway: $(STAMP)  ## the gateway's cost per backend: added latency, throughput ratio, CPU/request, batching, profile (~7 min)
	$(BIN)/python -m gatewaybench bench $(BENCH_ARGS)

# bandit: the Python sources (the key publisher too), settings in pyproject.toml [tool.bandit]; a medium
# or high finding fails. Its "nosec encountered ..., but no failed test" warnings are dropped: bandit
# prints them for the other nodes of a line that carries a `# nosec BXXX` (PyCQA/bandit#1041).
BANDIT_DIRS := gateway exporters loadtests gatewaybench serving model_store k8s/tools k8s/base/torchserve
# pip-audit: every package installed in .venv except the project itself (editable), against PyPI's
# vulnerability data. Local version labels (torch 2.13.0+cpu) are cut: advisories name the release.
# `make audit` is strict: a package it could not audit fails it. `make lint` fails on any known
# vulnerability too, but where the vulnerability data cannot be reached at all (every package
# unanswered, as on a machine whose package index mirror serves no per-release data) it says so in
# capitals and goes on: lint must stay usable offline, and the audit is not counted as done.
# Known vulnerabilities that do not apply: one line each, with why it does not apply or what mitigates it.
# None today; the form is:
#   PIP_AUDIT_IGNORE += --ignore-vuln GHSA-xxxx-xxxx-xxxx  # package: why it does not apply here
PIP_AUDIT_IGNORE :=
PIP_AUDIT := $(BIN)/pip-audit --disable-pip --no-deps --progress-spinner off -r $(VENV)/pip-audit.requirements $(PIP_AUDIT_IGNORE)

SOAK_ARGS ?=
soak: $(STAMP)  ## fault soak: 10 min of load through the gateway while servers are killed, frozen, re-keyed; report in reports/
	$(BIN)/python -m gatewaybench soak $(SOAK_ARGS)

lint: $(STAMP)  ## ruff, mypy, bandit, pip-audit
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	@echo "$(BIN)/bandit -c pyproject.toml -r $(BANDIT_DIRS) --severity-level medium -q"
	@$(BIN)/bandit -c pyproject.toml -r $(BANDIT_DIRS) --severity-level medium -q 2>$(VENV)/bandit.log; \
	  rc=$$?; grep -v 'nosec encountered' $(VENV)/bandit.log >&2; exit $$rc
	@$(MAKE) --no-print-directory _audit AUDIT_MODE=lint

audit: $(STAMP)  ## pip-audit alone, strict: fails on a known vulnerability or a package it could not audit
	@$(MAKE) --no-print-directory _audit AUDIT_MODE=strict

_audit:
	@echo "==> pip-audit: the packages in $(VENV) but the project, against PyPI's vulnerability data"
	@$(BIN)/pip freeze --all --local --exclude-editable | sed -E 's/\+[^[:space:]]+$$//' > $(VENV)/pip-audit.requirements
	@if [ "$(AUDIT_MODE)" = strict ]; then \
	  $(PIP_AUDIT) --strict || { echo "==> pip-audit FAILED: a known vulnerability, or a package it could not audit (above)" >&2; exit 1; }; \
	else \
	  $(PIP_AUDIT) > $(VENV)/pip-audit.out 2>$(VENV)/pip-audit.err; rc=$$?; \
	  total=$$(wc -l < $(VENV)/pip-audit.requirements); \
	  unaudited=$$(grep -c 'could not be audited' $(VENV)/pip-audit.out); \
	  if [ $$rc -ne 0 ]; then cat $(VENV)/pip-audit.out $(VENV)/pip-audit.err >&2; \
	    echo "==> pip-audit FAILED: known vulnerabilities above" >&2; exit 1; \
	  elif [ "$$unaudited" -ge "$$total" ]; then \
	    echo "==> pip-audit: NOT AUDITED: no vulnerability data reachable from here ($$unaudited of $$total packages unanswered); run 'make audit' where it is"; \
	  elif [ "$$unaudited" -gt 0 ]; then cat $(VENV)/pip-audit.out >&2; \
	    echo "==> pip-audit FAILED: $$unaudited of $$total packages could not be audited (above)" >&2; exit 1; \
	  else echo "==> pip-audit: no known vulnerabilities in $$total packages"; fi; \
	fi

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
