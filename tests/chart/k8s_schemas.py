"""Kubernetes JSON-schema validation of rendered manifests, offline.

The schemas ship inside the ``kubernetes-validate`` package (one folder per Kubernetes minor,
strict variants reject unknown fields). Its own ``validate`` re-reads the large definitions file
on every call; this wrapper builds one validator per (version, apiVersion, kind) and reuses it.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
from kubernetes_validate import utils
from referencing import Registry, Resource


class K8sSchemas:
    """Validators for one or more Kubernetes versions (e.g. "1.28.0"), strict mode."""

    def __init__(self, versions: tuple[str, ...]) -> None:
        self.versions = versions
        self._definitions: dict[str, Resource[Any]] = {}
        self._validators: dict[tuple[str, str, str], jsonschema.Draft202012Validator] = {}

    def _dir(self, version: str) -> str:
        wanted = utils.major_minor(version)
        known = [v for v in utils.all_versions() if utils.major_minor(v) <= wanted]
        if not known:
            raise ValueError(f"kubernetes-validate has no schemas for Kubernetes {version}")
        return f"kubernetes-json-schema/v{known[-1]}-local-strict"

    def _validator(self, version: str, api_version: str, kind: str) -> Any:
        key = (version, api_version, kind)
        if key not in self._validators:
            folder = self._dir(version)
            group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
            schema = utils.schema_contents(f"{folder}/{kind.lower()}-{group}.json", version)
            if folder not in self._definitions:
                defs = utils.schema_contents(f"{folder}/_definitions.json", version)
                self._definitions[folder] = Resource.from_contents(defs)
            registry = Resource.from_contents(schema) @ Registry()
            registry = self._definitions[folder] @ registry
            self._validators[key] = jsonschema.Draft202012Validator(schema, registry=registry)
        return self._validators[key]

    def problems(self, doc: dict[str, Any]) -> list[str]:
        """Every schema violation of ``doc`` in every version, as "k8s <v>: <path>: <msg>"."""
        out = []
        for version in self.versions:
            try:
                validator = self._validator(version, doc["apiVersion"], doc["kind"])
            except FileNotFoundError:
                out.append(f"k8s {version}: no schema for {doc['apiVersion']} {doc['kind']}")
                continue
            for err in validator.iter_errors(doc):
                where = ".".join(str(p) for p in err.absolute_path)
                out.append(f"k8s {version}: {where}: {err.message}")
        return out
