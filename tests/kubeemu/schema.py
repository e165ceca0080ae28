"""CRD structural-schema handling: defaulting, pruning and validation of custom objects.

The API server applies a CRD's ``openAPIV3Schema`` in this order: prune unknown fields, apply
``default`` values, then validate. This module does the same with the ``jsonschema`` package.

Differences from a real API server (documented in docs/operator.md):
- CEL rules (``x-kubernetes-validations``) are evaluated with cel-python (through
  ``sagellm_core.api.crdcheck``), without the API server's cost limits and transition rules;
- ``x-kubernetes-list-type``/``-map-keys`` uniqueness is not enforced;
- ``metadata`` is only checked for ``name`` (the server validates it separately);
- formats are checked only where ``jsonschema`` knows them (int32/int64 are not range-checked).
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema

from sagellm_core.api.crdcheck import cel_errors

_K8S_KEYS = ("x-kubernetes-", "nullable")


def to_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Translate an OpenAPI v3 structural schema into a JSON Schema draft-4 document.

    OpenAPI 3.0 keeps draft-4 semantics (e.g. boolean ``exclusiveMinimum``)."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key.startswith(_K8S_KEYS):
            continue
        if key == "properties":
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = to_json_schema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_json_schema(sub) for sub in value]
        else:
            out[key] = value
    if schema.get("x-kubernetes-int-or-string"):
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        out.pop("type", None)
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def apply_defaults(obj: Any, schema: dict[str, Any]) -> None:
    """Fill in ``default`` values for absent properties of objects that exist (in place)."""
    if isinstance(obj, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if name not in obj and "default" in sub:
                obj[name] = copy.deepcopy(sub["default"])
            if name in obj:
                apply_defaults(obj[name], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, value in obj.items():
                if key not in (schema.get("properties") or {}):
                    apply_defaults(value, extra)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for item in obj:
            apply_defaults(item, schema["items"])


def prune(obj: Any, schema: dict[str, Any]) -> None:
    """Drop fields the schema does not declare, unless it preserves unknown fields (in place)."""
    if schema.get("x-kubernetes-preserve-unknown-fields") or schema.get(
        "x-kubernetes-embedded-resource"
    ):
        return
    if isinstance(obj, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key in list(obj):
            if props is not None and key in props:
                prune(obj[key], props[key])
            elif isinstance(extra, dict):
                prune(obj[key], extra)
            elif props is not None or extra is False:
                del obj[key]
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for item in obj:
            prune(item, schema["items"])


def _path(error: jsonschema.ValidationError) -> str:
    parts = []
    for part in error.absolute_path:
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(parts).lstrip(".") or "<root>"


def validation_errors(obj: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Return human-readable ``field: problem`` lines, empty when the object is valid."""
    root = dict(schema)
    props = dict(root.get("properties") or {})
    props.pop("metadata", None)  # the server validates metadata itself
    props.pop("apiVersion", None)
    props.pop("kind", None)
    root["properties"] = props
    validator = jsonschema.Draft4Validator(to_json_schema(root))
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    return [f"{_path(error)}: Invalid value: {error.message}" for error in errors]


class CustomSchema:
    """The admission pipeline for one CRD version: prune, default, validate."""

    def __init__(self, openapi_v3_schema: dict[str, Any]) -> None:
        self.schema = openapi_v3_schema

    def admit(self, obj: dict[str, Any]) -> list[str]:
        """Prune and default ``obj`` in place; return validation errors (empty if valid)."""
        kept = {key: obj[key] for key in ("apiVersion", "kind", "metadata") if key in obj}
        prune(obj, self.schema)
        obj.update(kept)
        apply_defaults(obj, self.schema)
        return validation_errors(obj, self.schema) or cel_errors(self.schema, obj)
