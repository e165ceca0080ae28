"""vLLM's JSON-valued CLI flags (``--kv-transfer-config``, ``--kv-events-config``): decoded
once, with the error naming the flag (pure)."""

from __future__ import annotations

import json
from typing import Any


def json_object(flag: str, text: str) -> dict[str, Any]:
    """``text`` as a JSON object; ``ValueError`` naming ``flag`` when it is not one."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{flag} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{flag} must be a JSON object")
    return raw
