# onnxops — the two commands that matter: `make demo` and `make test`.
# Every target does its own set-up; nothing needs to be installed by hand first.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install test test-unit test-serving test-cluster test-loop lint demo crds \
        cluster-build cluster-up cluster-down cluster-status system-deps images e2e-kind bench clean

$(STAMP): pyproject.toml serving-image/pyproject.toml
	@command -v $(PY) >/dev/null || PY=python3; \
	 test -x $(BIN)/python || $${PY:-$(PY)} -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ./serving-image -e '.[pipeline,operator,dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages the tests use (prometheus, wrk); installed only when missing.
system-deps:
	@bash hack/system-deps.sh

# Go-built Kubernetes control plane + KWOK, cached outside the work tree by version.
cluster-build:
	@bash hack/devcluster/build.sh >/dev/null

# A local control plane + KWOK nodes as processes; state in .devcluster/ (see hack/devcluster/README.md).
# The tool needs only the Python standard library (and openssl): no venv required.
cluster-up: cluster-build
	@PYTHONPATH=hack/devcluster $$(test -x $(BIN)/python && echo $(BIN)/python || echo python3) -m devcluster up $(CLUSTER_ARGS)

cluster-down:
	@PYTHONPATH=hack/devcluster $$(test -x $(BIN)/python && echo $(BIN)/python || echo python3) -m devcluster down

cluster-status:
	@PYTHONPATH=hack/devcluster $$(test -x $(BIN)/python && echo $(BIN)/python || echo python3) -m devcluster status

test: install system-deps cluster-build
	$(BIN)/python -m pytest tests -m "not e2e"

test-unit: install
	$(BIN)/python -m pytest tests/unit

# Watch end to end: cluster + Prometheus + serving processes + the operator reading them.
test-loop: install system-deps cluster-build
	$(BIN)/python -m pytest tests/loop

lint: install
	$(BIN)/ruff check operator serving-image tests bench hack
	$(BIN)/ruff format --check operator serving-image tests bench hack
	$(BIN)/mypy

crds: install
	$(BIN)/onnxops crd > crds/modeldeployment.yaml

demo: install system-deps cluster-build
	@bash hack/demo.sh

# Container images; needs a Docker engine (not needed for test or demo).
IMAGE_TAG ?= 0.1.0
images:
	docker build -t ghcr.io/onnxops/onnxops-serving:$(IMAGE_TAG) serving-image
	docker build -t ghcr.io/onnxops/onnxops-operator:$(IMAGE_TAG) -f operator/Dockerfile .

# End-to-end on kind with real containers; skips cleanly without kind + Docker.
e2e-kind: install
	$(BIN)/python -m pytest tests/e2e -m e2e

bench: install system-deps
	@echo "see bench/*/README or RESULTS.md for each benchmark's command"

# cluster-down first: removing .devcluster/ under a running cluster would orphan its processes.
clean: cluster-down
	rm -rf .devcluster .demo .pytest_cache .mypy_cache .ruff_cache
