"""Generate a tiny, deterministic Llama model that the vLLM CPU build can serve.

Usage: python tools/vllm/make_tiny_model.py OUT_DIR [--seed N] [--max-position N]

Writes a Hugging Face model directory: config.json, generation_config.json,
model.safetensors (random weights from ``LlamaForCausalLM(config)`` under a fixed seed)
and a 512-token byte-level BPE tokenizer trained locally with ``tokenizers`` on a fixed
corpus. The shape (hidden 128, 2 heads, 1 KV head, head_dim 64, 2 layers) is the smallest
the CPU attention kernel accepts (head_dim 16 is refused). ``--max-position`` (default 512) is
the longest sequence the model serves: vLLM's CPU kernels fail past it, so streams that last
tens of seconds (shutdown tests) need a larger value, e.g. 8192. Needs torch, transformers and
tokenizers, which the vLLM environment has. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

VOCAB_SIZE = 512
SPECIAL_TOKENS = ["<s>", "</s>", "<unk>"]
CORPUS_WORDS = (
    "the quick brown fox jumps over a lazy dog hello world my name is once upon a time "
    "there was an engine that served tokens to many users count say hi router cache "
    "prefix decode prefill batch request response stream latency throughput model "
)
CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)


def corpus() -> list[str]:
    """A fixed English-ish corpus, so the trained merges are the same on every machine."""
    words = CORPUS_WORDS.split()
    lines = [" ".join(words[i:] + words[:i]) for i in range(len(words))]
    return lines * 20 + ["0123456789 !?.,;:'\"()[]{}<>/\\|-_+=*&^%$#@~`"]


def train_tokenizer(out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(out))


def save_model(out: Path, seed: int, max_position: int) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=max_position,
        bos_token_id=0,
        eos_token_id=1,
        tie_word_embeddings=False,
        torch_dtype="bfloat16",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(str(out), safe_serialization=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-position", type=int, default=512)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    train_tokenizer(args.out)
    save_model(args.out, args.seed, args.max_position)
    files = sorted(p.name for p in args.out.iterdir())
    print(json.dumps({"model_dir": str(args.out), "files": files}))


if __name__ == "__main__":
    main()
