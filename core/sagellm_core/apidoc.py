"""Generate ``docs/api.md`` — the API reference — from the CRDs that the models generate.

``python -m sagellm_core.apidoc docs/api.md`` (part of ``make crds``); a test fails when the
committed file is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from sagellm_core.crdgen import instance_crd, pool_crd

Schema = dict[str, Any]


def _type_of(node: Schema) -> str:
    if node.get("x-kubernetes-int-or-string"):
        return "int or string"
    kind = str(node.get("type", "object"))
    if kind == "array":
        return f"[]{_type_of(node.get('items', {}))}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"map[string]{_type_of(node['additionalProperties'])}"
    return kind


def _constraints(node: Schema) -> str:
    parts: list[str] = []
    if "enum" in node:
        parts.append("one of " + ", ".join(f"`{v}`" for v in node["enum"]))
    if "default" in node:
        parts.append(f"default `{node['default']}`")
    for key, word in (("minimum", "≥"), ("maximum", "≤")):
        if key in node:
            strict = node.get(f"exclusive{key.capitalize()}") is True
            parts.append(f"{'>' if strict and key == 'minimum' else word}{node[key]}")
    if "pattern" in node:
        parts.append(f"pattern `{node['pattern']}`")
    return "; ".join(parts)


def _rows(node: Schema, prefix: str, required: set[str]) -> list[str]:
    rows: list[str] = []
    for name, sub in node.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        desc = " ".join(str(sub.get("description", "")).split())
        req = "yes" if name in required else ""
        rows.append(f"| `{path}` | {_type_of(sub)} | {req} | {_constraints(sub)} | {desc} |")
        target = sub.get("items", sub) if sub.get("type") == "array" else sub
        rows += _rows(
            target, path + ("[]" if target is not sub else ""), set(target.get("required", []))
        )
    return rows


def _rules(node: Schema, prefix: str) -> list[str]:
    out = [f"- `{prefix or '.'}`: {r['message']}" for r in node.get("x-kubernetes-validations", [])]
    for name, sub in node.get("properties", {}).items():
        out += _rules(sub.get("items", sub), f"{prefix}.{name}")
    return out


def _section(crd: Schema) -> list[str]:
    names = crd["spec"]["names"]
    version = crd["spec"]["versions"][0]
    root = version["schema"]["openAPIV3Schema"]
    lines = [f"## {names['kind']}", ""]
    short = ", ".join(names["shortNames"])
    lines.append(
        f"`{crd['spec']['group']}/{version['name']}`, plural `{names['plural']}`, "
        f"short name `{short}`, namespaced, status subresource."
    )
    for part in ("spec", "status"):
        node = root["properties"][part]
        lines += ["", f"### {part}", "", "| field | type | required | constraints | description |"]
        lines += ["|---|---|---|---|---|"]
        lines += _rows(node, part, set(node.get("required", [])))
    rules = _rules(root["properties"]["spec"], "spec")
    if rules:
        lines += ["", "Cross-field rules (CEL, enforced by the API server and the operator):", ""]
        lines += rules
    return [*lines, ""]


# Fields taken out of the API, and where their meaning lives now; a manifest that still sets
# one is refused as an unknown field.
REMOVED = [
    "`spec.roles.decode.targetLatencyMs`: nothing could act on a per-role latency target that "
    "the scheduling SLOs (`spec.scheduling.sloTtftMs`, `sloDeadlineMs`, per-request headers) do "
    "not already express; set those instead.",
]


def render() -> str:
    lines = [
        "# API reference (`sagellm.io/v1alpha1`)",
        "",
        "Generated from `sagellm_core.api` by `make crds`; do not edit by hand.",
        "",
    ]
    for crd in (pool_crd(), instance_crd()):
        lines += _section(crd)
    lines += ["## Removed fields", "", *(f"- {r}" for r in REMOVED), ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    target = Path(argv[0] if argv else "docs/api.md")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
