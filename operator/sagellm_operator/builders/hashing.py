"""Stable content hashes for drift detection (the ``sagellm.io/spec-hash`` label)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sagellm_core.api.labels import SPEC_HASH_LENGTH


def spec_hash(obj: Any) -> str:
    """A short hash of ``obj``'s canonical JSON; equal specs give equal hashes."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:SPEC_HASH_LENGTH]
