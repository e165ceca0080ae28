"""The seed documents' rules of thumb: the model-size table and the GPU-count rules.

They give the planner's *defaults*; memory arithmetic (``memory.py``) overrides them when they
disagree, and the planner says why in its reasons.
"""

from __future__ import annotations

from dataclasses import dataclass

from sagellm_core.planner.memory import BYTES_PER_PARAM
from sagellm_core.planner.types import WeightDType


@dataclass(frozen=True)
class Rule:
    """One row of a rule table: a starting layout and how the seed documents phrase it."""

    label: str
    tensor: int
    pipeline: int = 1
    data: int = 1

    def describe(self) -> str:
        text = f"TP{self.tensor}"
        if self.pipeline > 1:
            text += f"×PP{self.pipeline}"
        if self.data > 1:
            text += f" DP{self.data}"
        return text


def sixteen_bit_equivalent(params_b: float, dtype: WeightDType) -> float:
    """The table assumes 16-bit weights: a quantized model is looked up by its 16-bit size."""
    return params_b * BYTES_PER_PARAM[dtype] / 2.0


def size_table(params_b_16bit: float) -> Rule:
    """Seed model-size table: <10B TP1 (or TP2), 10–30B TP4, 30–70B TP4/TP8,
    70–175B TP4×PP2, >175B TP8×PP4."""
    p = params_b_16bit
    if p < 10:
        return Rule("<10B → TP1 (TP2 if TP1 does not fit)", 1)
    if p < 30:
        return Rule("10–30B → TP4", 4)
    if p <= 70:
        return Rule("30–70B → TP4 (TP8 if TP4 does not fit)", 4)
    if p <= 175:
        return Rule("70–175B → TP4×PP2", 4, 2)
    return Rule(">175B → TP8×PP4", 8, 4)


def gpu_count_rule(gpus: int) -> Rule:
    """Seed GPU-count rules: 16+ → TP4 PP2 DP=gpus//8; 8–15 → TP4 DP=gpus//4; 4–7 → TP4;
    <4 → TP=min(gpus, 2)."""
    if gpus >= 16:
        return Rule("16+ GPUs → TP4 PP2, DP = gpus // 8", 4, 2, gpus // 8)
    if gpus >= 8:
        return Rule("8–15 GPUs → TP4, DP = gpus // 4", 4, 1, gpus // 4)
    if gpus >= 4:
        return Rule("4–7 GPUs → TP4", 4)
    return Rule("<4 GPUs → TP = min(gpus, 2)", min(gpus, 2))
