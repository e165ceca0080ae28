"""A simple, explainable TTFT predictor from injected load numbers (pure).

``predict(instance, prompt_tokens, ahead)`` =
    now_ttft                                   observed TTFT EWMA of the instance, or
                                               ``default_ttft_s × (1 + contention × in_flight)``
  + prompt_tokens / prefill_tokens_per_s       this prompt's own prefill
  + queued × service_s / max_concurrency       waiting for a free slot, where queued = engine
                                               waiting + ``ahead`` (+ 1 if the instance is full)

``completion_s`` adds ``output_tokens × decode_s_per_token`` for end-to-end deadlines.
"""

from __future__ import annotations

from dataclasses import dataclass

from sagellm_core.scheduling.view import InstanceView


@dataclass(frozen=True, slots=True)
class TtftPredictor:
    default_ttft_s: float = 0.2
    contention: float = 0.02
    prefill_tokens_per_s: float = 10_000.0
    service_s: float = 2.0
    decode_s_per_token: float = 0.02

    def predict(self, inst: InstanceView, prompt_tokens: int, ahead: int = 0) -> float:
        """Predicted seconds from now until the first token if sent to ``inst``."""
        if inst.ttft_s is not None:
            now_ttft = inst.ttft_s
        else:
            now_ttft = self.default_ttft_s * (1.0 + self.contention * inst.in_flight)
        prefill = prompt_tokens / self.prefill_tokens_per_s
        full = 1 if inst.in_flight >= inst.max_concurrency else 0
        queued = inst.waiting + ahead + full
        return now_ttft + prefill + queued * self.service_s / max(1, inst.max_concurrency)

    def completion_s(self, inst: InstanceView, prompt_tokens: int, output_tokens: int) -> float:
        """Predicted seconds from now until the last token."""
        return self.predict(inst, prompt_tokens) + output_tokens * self.decode_s_per_token
