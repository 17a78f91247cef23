# aimctrl — kubebuilder's verbs for a Python controller. `make help` lists them.
SHELL := /usr/bin/env bash
PY    := .venv/bin/python
BIN   := .venv/bin
IMG   ?= aimctrl:dev
KUBECONFIG_DEV := .dev/kubeconfig

.DEFAULT_GOAL := help

##@ General
.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development
.PHONY: setup
setup: ## Install Debian packages, the virtualenv and the control-plane binaries (idempotent).
	hack/setup.sh

.PHONY: manifests
manifests: ## Render CRDs and RBAC from the pydantic models and reconcilers' declarations.
	$(PY) hack/gen_manifests.py

.PHONY: fmt
fmt: ## ruff format.
	$(BIN)/ruff format src test hack bench

.PHONY: lint
lint: ## ruff check, ruff format --check, mypy --strict, import-linter, shellcheck.
	$(BIN)/ruff check src test hack bench
	$(BIN)/ruff format --check src test hack bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/shellcheck hack/*.sh hack/dev-cluster .ci/run

.PHONY: test
test: setup ## Everything CI runs: lint, unit, integration and e2e tests against real components.
	$(MAKE) lint
	$(BIN)/pytest test/unit test/integration test/e2e

.PHONY: test-unit
test-unit: ## Unit tests only (no I/O).
	$(BIN)/pytest test/unit

.PHONY: test-integration
test-integration: setup ## Integration tests: real kube-apiserver, etcd, controller-manager, KWOK, registry.
	$(BIN)/pytest test/integration

.PHONY: test-e2e
test-e2e: setup ## End-to-end tests with kubectl against the installed controller.
	$(BIN)/pytest test/e2e

.PHONY: bench
bench: setup ## Benchmarks (on demand, not in CI).
	for b in bench/bench_*.py; do $(PY) $$b; done

##@ Dev cluster
.PHONY: dev-up
dev-up: setup ## Start the local control plane, KWOK nodes and registries (.dev/kubeconfig).
	hack/dev-cluster up

.PHONY: dev-down
dev-down: ## Stop everything dev-up started.
	hack/dev-cluster down

.PHONY: run
run: setup ## Run aimctrl against the dev cluster (or $KUBECONFIG) with the sample models.
	hack/run-local.sh

##@ Build and deploy
.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	docker build -t $(IMG) .

.PHONY: install
install: ## Install the CRDs into the cluster in $KUBECONFIG (default: the dev cluster).
	$(BIN)/kubectl --kubeconfig $${KUBECONFIG:-$(KUBECONFIG_DEV)} apply -k config/crd

.PHONY: uninstall
uninstall: ## Remove the AIM objects (and what they own), then the CRDs.
	$(BIN)/kubectl --kubeconfig $${KUBECONFIG:-$(KUBECONFIG_DEV)} delete aim --all -A --cascade=foreground --ignore-not-found
	$(BIN)/kubectl --kubeconfig $${KUBECONFIG:-$(KUBECONFIG_DEV)} delete -k config/crd --ignore-not-found

.PHONY: deploy
deploy: ## Install CRDs, RBAC and the manager Deployment (config/default).
	$(BIN)/kubectl --kubeconfig $${KUBECONFIG:-$(KUBECONFIG_DEV)} apply -k config/default
