"""Which CRD schema this build expects, and whether the installed one is it.

``make crds`` stamps every generated CRD with a hash of its ``spec`` (annotation
``sagellm.io/schema-hash``). The operator reads the installed CRDs once at startup and refuses
to run against another schema: the API server, not the operator, enforces the schema and its
CEL rules on every write, so the operator must know the server enforces the schema it was built
for.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from sagellm_core.api.labels import GROUP

SCHEMA_HASH_ANNOTATION = f"{GROUP}/schema-hash"


def schema_hash(crd: Mapping[str, Any]) -> str:
    """A short hash of the CRD's ``spec`` (names, versions, schema, printer columns)."""
    canonical = json.dumps(crd["spec"], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def stamped(crd: dict[str, Any]) -> dict[str, Any]:
    """``crd`` with its schema hash annotation set."""
    notes = crd["metadata"].setdefault("annotations", {})
    notes[SCHEMA_HASH_ANNOTATION] = schema_hash(crd)
    return crd


def installed_crd_problems(
    installed: Mapping[str, Any] | None, expected: Mapping[str, Any]
) -> list[str]:
    """Why ``installed`` (the API server's copy, None when absent) is not ``expected``."""
    name = expected["metadata"]["name"]
    if installed is None:
        return [f"CRD {name} is not installed: apply crds/ of this release (the chart does)"]
    notes = (installed.get("metadata") or {}).get("annotations") or {}
    got, want = notes.get(SCHEMA_HASH_ANNOTATION), schema_hash(expected)
    if got != want:
        return [
            f"CRD {name} has schema {got or '(unstamped)'} but this operator expects {want}: "
            "apply crds/ of this release"
        ]
    return []
