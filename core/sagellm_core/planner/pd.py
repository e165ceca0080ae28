"""Prefill/decode compatibility: which prefill and decode instances can hand KV to each other.

Inputs: one :class:`PDSide` per role and the KV connector. Output: a list of errors (empty when
compatible), each naming the mismatch and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass

NIXL = "NixlConnector"


@dataclass(frozen=True)
class PDSide:
    """What one role's instances serve and how they are split."""

    model: str
    dtype: str
    block_size: int
    tensor: int
    kv_cache_dtype: str = "auto"


def pd_compatibility_errors(prefill: PDSide, decode: PDSide, connector: str = NIXL) -> list[str]:
    """KV made by ``prefill`` must be readable by ``decode`` over ``connector``."""
    errors = []
    for name in ("model", "dtype", "kv_cache_dtype", "block_size"):
        p, d = getattr(prefill, name), getattr(decode, name)
        if p != d:
            errors.append(
                f"prefill and decode must use the same {name.replace('_', ' ')}: "
                f"prefill has {p!r}, decode has {d!r}; KV blocks are only reusable when they match"
            )
    if connector == NIXL and prefill.tensor > decode.tensor:
        errors.append(
            f"prefill TP{prefill.tensor} > decode TP{decode.tensor} is not supported by "
            f"{NIXL}: give decode at least TP{prefill.tensor} or lower prefill TP"
        )
    return errors
