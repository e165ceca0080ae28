#!/usr/bin/env bash
# Run the in-process executor against a REAL vLLM (CPU build) with the tiny model.
#
# Sets up .venv-vllm and the tiny model if needed (tools/vllm/setup.sh), adds the test tools
# (pytest, pytest-asyncio, pytest-timeout) and orjson to .venv-vllm, and runs
# `pytest -m vllm tests/integration/inprocess` with .venv-vllm's python; the project's packages
# come from the source tree (PYTHONPATH), so nothing of sageLLM is installed there. The test
# starts vLLM's AsyncLLM inside the ControlPlaneManager's process (the seed's "direct
# integration" example), so no server is started here. Extra arguments go to pytest.
#
# Env: VLLM_VENV (.venv-vllm), TINY_MODEL_DIR (.tools/tiny-llama), VLLM_LOG_DIR
# (out/vllm-inprocess).
set -uo pipefail

cd "$(dirname "$0")/../.."
VENV="${VLLM_VENV:-.venv-vllm}"
export TINY_MODEL_DIR="${TINY_MODEL_DIR:-.tools/tiny-llama}"
OUT="${VLLM_LOG_DIR:-out/vllm-inprocess}"
TEST_TOOLS=("pytest==9.2.0" "pytest-asyncio==1.5.0" "pytest-timeout==2.4.0" "orjson==3.13.0")

log() { echo "[vllm-inprocess] $*" >&2; }

bash tools/vllm/setup.sh || { log "set-up failed"; exit 2; }
if ! "$VENV/bin/python" -c "import pytest, pytest_asyncio, pytest_timeout, orjson" 2>/dev/null; then
    log "installing test tools into $VENV: ${TEST_TOOLS[*]}"
    "$VENV/bin/python" -m pip install --quiet "${TEST_TOOLS[@]}" || { log "pip failed"; exit 2; }
fi
mkdir -p "$OUT"
start=$(date +%s)
PYTHONPATH="core:router:simulator:operator:embed${PYTHONPATH:+:$PYTHONPATH}" \
VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}" \
    "$VENV/bin/python" -m pytest -m vllm tests/integration/inprocess -q -p no:cacheprovider \
    -o addopts="" --timeout 900 "$@" 2>&1 | tee "$OUT/pytest.txt"
rc=${PIPESTATUS[0]}
log "finished in $(( $(date +%s) - start ))s with exit code $rc (log: $OUT/pytest.txt)"
exit "$rc"
