"""Resource types known to the emulated API server: built-ins plus those CRDs register."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .schema import CustomSchema

VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    status_subresource: bool = True
    schema: CustomSchema | None = field(default=None, compare=False)
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)


BUILTINS: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "namespaces", "Namespace", namespaced=False),
    ResourceType("", "v1", "pods", "Pod", short_names=("po",)),
    ResourceType("", "v1", "events", "Event", status_subresource=False, short_names=("ev",)),
    ResourceType("", "v1", "secrets", "Secret", status_subresource=False),
    ResourceType("", "v1", "configmaps", "ConfigMap", status_subresource=False),
    ResourceType("", "v1", "services", "Service", short_names=("svc",)),
    ResourceType(
        "networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", status_subresource=False
    ),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short_names=("crd",),
    ),
)


def from_crd(crd: dict[str, Any]) -> ResourceType:
    """Build the served resource type of a CRD (its storage version)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    versions = spec.get("versions") or []
    served = [v for v in versions if v.get("storage")] or versions
    if not served or not names.get("plural") or not names.get("kind") or not spec.get("group"):
        raise ValueError("a CRD needs spec.group, spec.names.plural/kind and spec.versions")
    version = served[0]
    openapi = (version.get("schema") or {}).get("openAPIV3Schema")
    return ResourceType(
        group=spec["group"],
        version=version["name"],
        plural=names["plural"],
        kind=names["kind"],
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        status_subresource="status" in (version.get("subresources") or {}),
        schema=CustomSchema(openapi) if openapi else None,
        short_names=tuple(names.get("shortNames") or ()),
    )
