#!/usr/bin/env bash
# Run the simulator conformance suite against a REAL vLLM (CPU build) on this machine.
#
# Sets up .venv-vllm and the tiny model if needed (tools/vllm/setup.sh), starts vLLM in the
# background on a free loopback port, waits for /health (up to VLLM_START_TIMEOUT, 300 s),
# runs `pytest -m vllm tests/integration/sim/test_conformance.py` against it, always stops the
# server, and prints a summary. The SIGTERM checks (test_conformance_shutdown.py) start their
# own vLLM processes (they signal them) from the same venv, on the 8192-token tiny model, and so
# do the KV-event checks (test_sim_kv_events.py: event sequence, vLLM's own msgspec classes).
# Extra arguments go to pytest (e.g. -k metrics -x).
#
# Env: VLLM_VENV (.venv-vllm), TINY_MODEL_DIR (.tools/tiny-llama), VLLM_MODEL_NAME (tiny),
# VLLM_START_TIMEOUT (300), VLLM_LOG (out/vllm-conformance/vllm.log), VLLM_EXTRA_ARGS.
set -uo pipefail

cd "$(dirname "$0")/../.."
VENV="${VLLM_VENV:-.venv-vllm}"
MODEL_DIR="${TINY_MODEL_DIR:-.tools/tiny-llama}"
NAME="${VLLM_MODEL_NAME:-tiny}"
TIMEOUT="${VLLM_START_TIMEOUT:-300}"
LOG="${VLLM_LOG:-out/vllm-conformance/vllm.log}"

log() { echo "[vllm-conformance] $*" >&2; }

bash tools/vllm/setup.sh || { log "set-up failed"; exit 2; }
mkdir -p "$(dirname "$LOG")"
PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"

# shellcheck disable=SC2086  # VLLM_EXTRA_ARGS is a list of flags
VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}" \
    "$VENV/bin/python" -m vllm.entrypoints.openai.api_server \
    --model "$MODEL_DIR" --served-model-name "$NAME" --max-model-len 512 --dtype bfloat16 \
    --host 127.0.0.1 --port "$PORT" ${VLLM_EXTRA_ARGS:-} >"$LOG" 2>&1 &
PID=$!

stop_server() {
    if kill -0 "$PID" 2>/dev/null; then
        log "stopping vLLM (pid $PID)"
        kill -TERM "$PID" 2>/dev/null
        for _ in $(seq 1 30); do kill -0 "$PID" 2>/dev/null || break; sleep 1; done
        kill -KILL "$PID" 2>/dev/null || true
    fi
    wait "$PID" 2>/dev/null || true
}
trap stop_server EXIT INT TERM

log "starting vLLM on $URL (log: $LOG)"
start=$(date +%s)
until curl -fsS -o /dev/null "$URL/health" 2>/dev/null; do
    if ! kill -0 "$PID" 2>/dev/null; then
        log "vLLM exited during start-up; last log lines:"; tail -n 30 "$LOG" >&2; exit 2
    fi
    if (( $(date +%s) - start > TIMEOUT )); then
        log "vLLM not healthy within ${TIMEOUT}s; last log lines:"; tail -n 30 "$LOG" >&2; exit 2
    fi
    sleep 2
done
STARTUP=$(( $(date +%s) - start ))
log "vLLM healthy after ${STARTUP}s"

SAGELLM_VLLM_URL="$URL" SAGELLM_VLLM_PYTHON="$VENV/bin/python" \
SAGELLM_VLLM_LONG_MODEL="$MODEL_DIR-8k" .venv/bin/pytest -m vllm \
    tests/integration/sim/test_conformance.py tests/integration/sim/test_conformance_shutdown.py \
    tests/integration/sim/test_sim_kv_events.py tests/integration/sim/test_conformance_stream_start.py \
    -q -p no:cacheprovider "$@" | tee "$(dirname "$LOG")/pytest.txt"
RC=${PIPESTATUS[0]}

echo "== conformance against real vLLM ($("$VENV/bin/python" -c 'import importlib.metadata as m; print("vllm-cpu", m.version("vllm-cpu"))')) =="
echo "start-up: ${STARTUP}s; pytest exit code: $RC; summary: $(tail -n 1 "$(dirname "$LOG")/pytest.txt")"
exit "$RC"
