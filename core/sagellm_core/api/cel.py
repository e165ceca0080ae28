"""CEL rules (``x-kubernetes-validations``) attached to the API models' CRD schemas."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import ConfigDict, JsonValue


def cel(
    rule: str, message: str, field_path: str | None = None, message_expression: str | None = None
) -> dict[str, str]:
    out = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    if message_expression:
        out["messageExpression"] = message_expression
    return out


def cel_list(items: Iterable[str]) -> str:
    return "[" + ", ".join(f"'{item}'" for item in sorted(items)) + "]"


def cel_rules(*rules: dict[str, str]) -> ConfigDict:
    """Model config that attaches CEL rules to the model's CRD schema."""
    extra: dict[str, JsonValue] = {"x-kubernetes-validations": [dict(r) for r in rules]}
    return ConfigDict(json_schema_extra=extra)
