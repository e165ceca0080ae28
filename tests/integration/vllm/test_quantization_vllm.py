"""``model.quantization`` / ``quantizeOnLoad`` produce argv that vLLM's own config parser
accepts, for config-only model directories of each checkpoint kind (BF16; FP8 as
compressed-tensors, fbgemm_fp8 and native fp8; AWQ; GPTQ).

Needs vLLM: ``SAGELLM_VLLM_PYTHON`` (a python with vLLM installed), else ``.venv-vllm`` (made
by ``tools/vllm/setup.sh``). Runs with ``pytest -m vllm`` (``make test-vllm``).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sagellm_core.api.common import ParallelismSizes, Role
from sagellm_core.api.pool import InferencePoolSpec
from sagellm_core.vllm_args import serve_args, serve_config_for_pool

pytestmark = pytest.mark.vllm
ROOT = Path(__file__).resolve().parents[3]
CHECK = Path(__file__).with_name("vllm_config_check.py")
LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 128,
         "intermediate_size": 256, "num_attention_heads": 2, "num_hidden_layers": 2,
         "num_key_value_heads": 1, "head_dim": 64, "vocab_size": 512,
         "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "torch_dtype": "bfloat16",
         "bos_token_id": 0, "eos_token_id": 1, "tie_word_embeddings": False}  # fmt: skip
FP8_CT = {"quant_method": "compressed-tensors", "format": "float-quantized",
          "quantization_status": "compressed", "ignore": ["lm_head"],
          "config_groups": {"group_0": {"targets": ["Linear"],
              "weights": {"num_bits": 8, "type": "float", "strategy": "tensor",
                          "dynamic": False, "symmetric": True},
              "input_activations": {"num_bits": 8, "type": "float", "strategy": "tensor",
                                    "dynamic": False, "symmetric": True}}}}  # fmt: skip
CHECKPOINTS: dict[str, dict[str, Any] | None] = {
    "bf16": None,
    "fp8-compressed-tensors": FP8_CT,
    "fp8-fbgemm": {"quant_method": "fbgemm_fp8", "activation_scale_ub": 1200.0,
                   "modules_to_not_convert": ["lm_head"]},
    "fp8-native": {"quant_method": "fp8", "activation_scheme": "dynamic"},
    "awq": {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True,
            "version": "gemm"},
    "gptq": {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False,
             "sym": True},
}  # fmt: skip
# (checkpoint, model fields, engine extraArgs, vLLM's resolved quantization)
CASES = [
    ("bf16", {}, [], "None"),
    ("bf16", {"quantization": "fp8", "quantizeOnLoad": True}, [], "fp8"),
    ("fp8-compressed-tensors", {"quantization": "fp8"}, [], "compressed-tensors"),
    ("fp8-native", {"quantization": "fp8"}, [], "fp8"),
    # vLLM 0.32 deprecates fbgemm_fp8: it asks for this flag, which extraArgs carries
    ("fp8-fbgemm", {"quantization": "fp8"}, ["--allow-deprecated-quantization"], "fbgemm_fp8"),
    ("awq", {"quantization": "awq"}, [], "awq"),
    ("gptq", {"quantization": "gptq"}, [], "auto_gptq"),
]  # fmt: skip


@pytest.fixture(scope="module")
def vllm_python() -> str:
    python = os.environ.get("SAGELLM_VLLM_PYTHON") or str(ROOT / ".venv-vllm" / "bin" / "python")
    if not Path(python).exists():
        pytest.skip(
            f"no vLLM python at {python} (set SAGELLM_VLLM_PYTHON or run tools/vllm/setup.sh)"
        )
    return python


def checkpoint(tmp: Path, kind: str) -> Path:
    folder = tmp / kind
    folder.mkdir(exist_ok=True)
    config = dict(LLAMA)
    if CHECKPOINTS[kind] is not None:
        config["quantization_config"] = CHECKPOINTS[kind]
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def argv(source: Path, model: dict[str, Any], extra: list[str]) -> list[str]:
    spec = InferencePoolSpec.model_validate({
        "model": {"name": "m", "source": str(source), "parameters": 1, "maxModelLen": 256,
                  "dtype": "auto", **model},
        "engine": {"gpuMemoryGiB": 80, "extraArgs": extra},
        "roles": {"general": {"replicas": 1}},
    })  # fmt: skip
    return serve_args(serve_config_for_pool(spec, Role.GENERAL, ParallelismSizes()))


def vllm_says(python: str, args: list[str]) -> str:
    env = {**os.environ, "VLLM_LOGGING_LEVEL": "ERROR"}
    done = subprocess.run(
        [python, str(CHECK), *args], capture_output=True, text=True, timeout=300, env=env
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(("OK", "ERR"))]
    assert lines, done.stderr[-2000:]
    return lines[-1]


IDS = [f"{c[0]}-{'onload' if c[1].get('quantizeOnLoad') else 'ckpt'}" for c in CASES]


@pytest.mark.parametrize(("kind", "model", "extra", "resolved"), CASES, ids=IDS)
def test_vllm_accepts_our_argv(
    vllm_python: str, tmp_path: Path, kind: str, model: dict[str, Any], extra: list[str],
    resolved: str,
) -> None:  # fmt: skip
    assert (
        vllm_says(vllm_python, argv(checkpoint(tmp_path, kind), model, extra)) == f"OK {resolved}"
    )


def test_the_old_always_flag_argv_is_refused(vllm_python: str, tmp_path: Path) -> None:
    """What the flag-always behaviour sent for an FP8 compressed-tensors checkpoint."""
    args = [*argv(checkpoint(tmp_path, "fp8-compressed-tensors"), {"quantization": "fp8"}, []),
            "--quantization", "fp8"]  # fmt: skip
    said = vllm_says(vllm_python, args)
    assert said.startswith("ERR")
    assert "does not match the quantization method specified" in said
