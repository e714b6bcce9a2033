# onnxops — the two commands that matter: `make demo` and `make test`.
# Every target does its own set-up; nothing needs to be installed by hand first.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install test test-unit test-serving test-cluster test-loop lint demo crds \
        cluster-build cluster-up cluster-down cluster-status cluster-env system-deps images kind-node e2e-kind bench clean

# The serving image's pins constrain the venv: the tests run the versions the image ships (a
# new uvicorn on PyPI once made the venv and the image differ, and a fresh clone's test fail).
$(STAMP): pyproject.toml serving-image/pyproject.toml serving-image/requirements.txt
	@command -v $(PY) >/dev/null || PY=python3; \
	 test -x $(BIN)/python || $${PY:-$(PY)} -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c serving-image/requirements.txt -e ./serving-image -e '.[pipeline,operator,dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages the tests use (prometheus, wrk); installed only when missing.
system-deps:
	@bash hack/system-deps.sh

# Go-built Kubernetes control plane + KWOK, and the test tools (the kstatus checker, the Argo CD
# health-script runner, versitygw: the tests' S3 server), cached outside the work tree by version.
cluster-build:
	@bash hack/devcluster/build.sh >/dev/null
	@if [ -n "$(AUTOSCALER)" ]; then bash hack/devcluster/build.sh $(AUTOSCALER) >/dev/null; fi
	@bash hack/gotool.sh hack/kstatus sigs.k8s.io/cli-utils >/dev/null
	@bash hack/gotool.sh hack/argolua github.com/yuin/gopher-lua >/dev/null
	@bash hack/gotool.sh hack/dashcheck github.com/grafana/grafana-foundation-sdk/go >/dev/null
	@bash hack/gotool.sh hack/versitygw github.com/versity/versitygw github.com/versity/versitygw/cmd/versitygw >/dev/null

# A local control plane + KWOK nodes + the pod runner (the kubelet of serving pods) as processes;
# state in .devcluster/ or $DEVCLUSTER_STATE (see hack/devcluster/README.md).
# The tool needs only the Python standard library (and openssl): no venv required.
# AUTOSCALER=karpenter adds Karpenter (its KWOK provider) with a NodePool per pool.
cluster-up: cluster-build
	@PYTHONPATH=hack/devcluster $$(test -x $(BIN)/python && echo $(BIN)/python || echo python3) -m devcluster up $(if $(AUTOSCALER),--autoscaler $(AUTOSCALER)) $(CLUSTER_ARGS)

cluster-down:
	@PYTHONPATH=hack/devcluster $$(test -x $(BIN)/python && echo $(BIN)/python || echo python3) -m devcluster down

cluster-status:
	@PYTHONPATH=hack/devcluster $$(test -x $(BIN)/python && echo $(BIN)/python || echo python3) -m devcluster status

# The KUBECONFIG and PATH (built kubectl) exports alone: eval "$(make -s cluster-env)".
cluster-env:
	@PYTHONPATH=hack/devcluster $$(test -x $(BIN)/python && echo $(BIN)/python || echo python3) -m devcluster env

# The suites run Karpenter in its autoscaler tests: they build it too (once, then cached).
test test-cluster test-loop: AUTOSCALER ?= karpenter

# The suite on TEST_WORKERS pytest-xdist workers, each with a devcluster of its own; a test
# module is one unit of work (its fixtures made once, its tests in order), the longest first
# (tests/conftest.py). TEST_WORKERS=0: one process. Tests marked `quiet` (CPU throttling, p99
# spread) run after, one process: on 2 cores beside two other workers a 100m pod is starved
# rather than throttled, and p99 noise reads as an anomaly (four of five fresh-clone runs).
TEST_WORKERS ?= 3
XDIST = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)

test: install system-deps cluster-build
	$(BIN)/python -m pytest tests -m "not e2e and not quiet" $(XDIST) --durations=10
	$(BIN)/python -m pytest tests -m "quiet and not e2e" --durations=5

test-unit: install
	$(BIN)/python -m pytest tests/unit

test-serving: install
	$(BIN)/python -m pytest tests/serving

test-cluster: install system-deps cluster-build
	$(BIN)/python -m pytest tests/cluster $(XDIST)

# Watch and heal end to end: cluster + Prometheus + serving processes + the operator.
test-loop: install system-deps cluster-build
	$(BIN)/python -m pytest tests/loop $(XDIST)

lint: install
	$(BIN)/ruff check operator serving-image tests bench hack
	$(BIN)/ruff format --check operator serving-image tests bench hack
	$(BIN)/mypy

crds: install
	$(BIN)/onnxops crd > crds/modeldeployment.yaml

demo: install system-deps cluster-build
	@bash hack/demo.sh

# Container images: with Docker where an engine runs, else with podman (from system-deps); on a
# Debian base made from Debian packages when Docker Hub is unreachable (hack/images/).
# ENGINE=docker|podman and IMAGE_BASE=IMAGE override the choices.
IMAGE_TAG ?= 0.1.0
images: system-deps
	@IMAGE_TAG=$(IMAGE_TAG) bash hack/images/build.sh

# The kind node image (localhost/onnxops-kind-node:K8S_VERSION) from Debian packages and Go
# modules with podman, and the host preparation kind needs (hack/kind/); cached by its inputs.
kind-node: system-deps
	@bash hack/kind/node.sh >/dev/null

# End-to-end on kind (kind's podman provider with the node image above); skips naming what is
# missing (tests/e2e/KIND.md: what it took on the development machine).
e2e-kind: install kind-node
	@eval "$$(bash hack/kind/env.sh)" && $(BIN)/python -m pytest tests/e2e -m e2e

bench: install system-deps
	@echo "see bench/*/README or RESULTS.md for each benchmark's command"

# cluster-down first: removing .devcluster/ under a running cluster would orphan its processes.
clean: cluster-down
	rm -rf .devcluster .demo .pytest_cache .mypy_cache .ruff_cache
