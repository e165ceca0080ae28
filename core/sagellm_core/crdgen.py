"""Generate the CustomResourceDefinitions in ``crds/`` from the pydantic API models.

``python -m sagellm_core.crdgen crds`` (or ``make crds``) writes one YAML file per kind; a test
fails when the committed files differ from what the models generate.

Pydantic emits JSON Schema (draft 2020-12); Kubernetes wants a *structural* OpenAPI v3 schema.
:func:`structural` converts: inlines ``$ref``, turns ``Optional[X]`` into ``X``, maps
``int | str`` to ``x-kubernetes-int-or-string``, free-form objects to
``x-kubernetes-preserve-unknown-fields`` and numeric exclusive bounds to the OpenAPI v3.0 form.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from sagellm_core.api import labels
from sagellm_core.api.instance import ExecutionInstanceSpec, ExecutionInstanceStatus
from sagellm_core.api.pool import InferencePoolSpec, InferencePoolStatus
from sagellm_core.crdversion import stamped

Schema = dict[str, Any]
_DROP = {"title", "$defs"}


def _deref(node: Schema, defs: dict[str, Schema]) -> Schema:
    ref = node.get("$ref")
    if ref is None:
        return node
    target = dict(defs[ref.rsplit("/", 1)[-1]])
    merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return _deref(merged, defs)


def _collapse_any_of(node: Schema, defs: dict[str, Schema]) -> Schema:
    options = [_deref(o, defs) for o in node["anyOf"] if o.get("type") != "null"]
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    if rest.get("default", 0) is None:
        rest.pop("default")
    types = sorted(o.get("type", "") for o in options)
    if types == ["integer", "string"]:
        return {**rest, "x-kubernetes-int-or-string": True}
    if len(options) != 1:
        raise ValueError(f"cannot express anyOf {node['anyOf']!r} in a structural schema")
    return {**options[0], **rest}


def structural(node: Schema, defs: dict[str, Schema]) -> Schema:
    """Convert one pydantic JSON-schema node into a Kubernetes structural schema node."""
    node = _deref(node, defs)
    if "anyOf" in node:
        node = _collapse_any_of(node, defs)
    out: Schema = {}
    for key, value in node.items():
        if key in _DROP or (key == "additionalProperties" and value is False):
            continue
        if key == "properties":
            out[key] = {name: structural(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = structural(value, defs)
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound], out[key] = value, True
        else:
            out[key] = value
    if out.get("type") == "object" and "properties" not in out:
        extra = out.get("additionalProperties")
        if not isinstance(extra, dict) or not extra:
            out.pop("additionalProperties", None)
            out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def model_schema(model: type[BaseModel]) -> Schema:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural(raw, raw.get("$defs", {}))


def _column(name: str, path: str, kind: str = "string", priority: int = 0) -> Schema:
    col: Schema = {"name": name, "type": kind, "jsonPath": path}
    if priority:
        col["priority"] = priority
    return col


_AGE = _column("Age", ".metadata.creationTimestamp", "date")

POOL_COLUMNS = [
    _column("Model", ".spec.model.name"),
    _column("Phase", ".status.phase"),
    _column("Ready", ".status.readyReplicas", "integer"),
    _column("Desired", ".status.desiredReplicas", "integer"),
    _column("Accepted", '.status.conditions[?(@.type=="Accepted")].status'),
    _column("Policy", ".spec.scheduling.policy", priority=1),
    _column("Routing", ".spec.scheduling.routing", priority=1),
    _AGE,
]
INSTANCE_COLUMNS = [
    _column("Pool", ".spec.pool"),
    _column("Role", ".spec.role"),
    _column("Phase", ".status.phase"),
    _column("URL", ".status.url"),
    _column("Restarts", ".status.restarts", "integer", priority=1),
    _AGE,
]


POOL_NAME_RULE: Schema = {
    "rule": f"!has(self.metadata.name) || size(self.metadata.name) <= {labels.MAX_POOL_NAME}",
    "message": (
        f"metadata.name must be at most {labels.MAX_POOL_NAME} characters: instance, pod and "
        f"LeaderWorkerSet names add up to {labels.POD_SUFFIX_MAX} characters to it and must fit "
        f"in {labels.DNS_LABEL_MAX}"
    ),
}
"""At the root: CEL can read ``metadata.name`` only there (no fieldPath: the schema does not
declare metadata's fields)."""


POOL_SCALE: Schema = {
    "specReplicasPath": ".spec.roles.general.replicas",
    "statusReplicasPath": ".status.scale.replicas",
    "labelSelectorPath": ".status.scale.selector",
}
"""``/scale`` drives the general role: a Kubernetes scale subresource carries one number, and a
PD pool needs two (prefill and decode); PD pools use ``spec.autoscaling`` instead."""


def _crd(
    kind: str, plural: str, singular: str, short: tuple[str, ...], spec: Schema, status: Schema,
    columns: list[Schema], rules: tuple[Schema, ...] = (), scale: Schema | None = None,
) -> Schema:  # fmt: skip
    root: Schema = {
        "type": "object",
        "description": f"{kind} ({labels.API_VERSION}).",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    if rules:
        root["x-kubernetes-validations"] = list(rules)
    version = {
        "name": labels.VERSION,
        "served": True,
        "storage": True,
        "subresources": {"status": {}, **({"scale": scale} if scale else {})},
        "additionalPrinterColumns": columns,
        "schema": {"openAPIV3Schema": root},
    }
    return stamped(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{labels.GROUP}"},
            "spec": {
                "group": labels.GROUP,
                "scope": "Namespaced",
                "names": {
                    "kind": kind,
                    "listKind": f"{kind}List",
                    "plural": plural,
                    "singular": singular,
                    "shortNames": list(short),
                    "categories": ["sagellm"],
                },
                "versions": [version],
            },
        }
    )


def pool_crd() -> Schema:
    return _crd(
        labels.POOL_KIND, labels.POOL_PLURAL, labels.POOL_SINGULAR, labels.POOL_SHORT_NAMES,
        model_schema(InferencePoolSpec), model_schema(InferencePoolStatus), POOL_COLUMNS,
        (POOL_NAME_RULE,), POOL_SCALE,
    )  # fmt: skip


def instance_crd() -> Schema:
    return _crd(
        labels.INSTANCE_KIND, labels.INSTANCE_PLURAL, labels.INSTANCE_SINGULAR,
        labels.INSTANCE_SHORT_NAMES, model_schema(ExecutionInstanceSpec),
        model_schema(ExecutionInstanceStatus), INSTANCE_COLUMNS,
    )  # fmt: skip


HEADER = "# Generated by `make crds` (python -m sagellm_core.crdgen) from sagellm_core.api.\n"


def render_all() -> dict[str, str]:
    """File name → YAML text for every CRD."""
    out: dict[str, str] = {}
    for crd in (pool_crd(), instance_crd()):
        name = f"{labels.GROUP}_{crd['spec']['names']['plural']}.yaml"
        out[name] = HEADER + yaml.safe_dump(crd, sort_keys=False, width=100)
    return out


def main(argv: list[str]) -> int:
    target = Path(argv[0] if argv else "crds")
    target.mkdir(parents=True, exist_ok=True)
    for name, text in render_all().items():
        (target / name).write_text(text, encoding="utf-8")
        print(f"wrote {target / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
