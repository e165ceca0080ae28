"""Validate an object against a CRD the way the API server would.

Three steps, in the API server's order: structural defaulting, OpenAPI schema validation
(including unknown-field rejection as with ``kubectl``'s strict field validation) and the CEL
rules (``x-kubernetes-validations``). Used by the tests, the emulated API server and the
operator (which re-checks in case the cluster's API server predates CEL).

Every problem is reported as ``"<field path>: <message>"``.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import celpy
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError
from jsonschema import Draft4Validator

Schema = dict[str, Any]


def crd_schema(crd: Schema, version: str | None = None) -> Schema:
    """The openAPIV3Schema of ``version`` (or the storage version) of a CRD."""
    for ver in crd["spec"]["versions"]:
        if ver["name"] == version or (version is None and ver.get("storage")):
            schema: Schema = ver["schema"]["openAPIV3Schema"]
            return schema
    raise KeyError(f"CRD {crd['metadata']['name']} has no version {version!r}")


def apply_defaults(schema: Schema, obj: Any) -> Any:
    """Return a copy of ``obj`` with schema defaults filled in (structural defaulting)."""
    obj = copy.deepcopy(obj)
    _default_in_place(schema, obj)
    return obj


def _default_in_place(schema: Schema, obj: Any) -> None:
    if isinstance(obj, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in obj and "default" in sub:
                obj[name] = copy.deepcopy(sub["default"])
            if name in obj:
                _default_in_place(sub, obj[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for value in obj.values():
                _default_in_place(extra, value)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for item in obj:
            _default_in_place(schema["items"], item)


def _strict(schema: Schema) -> Schema:
    """Copy of ``schema`` that rejects unknown fields, as strict field validation does."""
    out = dict(schema)
    if "properties" in out:
        out["properties"] = {k: _strict(v) for k, v in out["properties"].items()}
        if not out.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = _strict(out[key])
    if out.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    return out


def _path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "<root>"


def schema_errors(schema: Schema, obj: Any) -> list[str]:
    validator = Draft4Validator(_strict(schema))
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
    return [_describe(err) for err in errors]


def _describe(err: Any) -> str:
    if err.validator == "additionalProperties":
        return f"{_path(err.absolute_path)}: unknown field(s): {err.message}"
    return f"{_path(err.absolute_path)}: {err.message}"


def cel_errors(schema: Schema, obj: Any, path: str = "") -> list[str]:
    """Evaluate every CEL rule in ``schema`` against ``obj`` (defaults already applied)."""
    errors: list[str] = []
    for rule in schema.get("x-kubernetes-validations", []):
        if not _cel_holds(rule["rule"], obj):
            where = path + rule.get("fieldPath", "")
            errors.append(f"{where.lstrip('.') or '<root>'}: {_message(rule, obj)}")
    if isinstance(obj, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in obj:
                errors += cel_errors(sub, obj[name], f"{path}.{name}")
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(obj):
            errors += cel_errors(schema["items"], item, f"{path}[{i}]")
    return errors


@functools.lru_cache(maxsize=256)
def _program(rule: str) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(rule))


def _cel_holds(rule: str, value: Any) -> bool:
    return bool(_program(rule).evaluate({"self": json_to_cel(value)}))


def _message(rule: dict[str, str], value: Any) -> str:
    """``messageExpression`` when it evaluates to a non-empty string, else ``message`` (as the
    API server does)."""
    expression = rule.get("messageExpression")
    if expression:
        try:
            text = _program(expression).evaluate({"self": json_to_cel(value)})
        except (CELEvalError, TypeError, IndexError):
            text = None
        if isinstance(text, str) and text.strip():
            return str(text)
    return rule["message"]


def validate_object(crd: Schema, obj: Schema) -> list[str]:
    """All problems with ``obj`` as the API server would report them; empty when valid."""
    schema = crd_schema(crd)
    defaulted = apply_defaults(schema, obj)
    errors = schema_errors(schema, defaulted)
    return errors or cel_errors(schema, defaulted)
