"""Kubernetes discovery against the emulated API (kmock-based): list, watch, modify, delete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio import client as k8s

from sagellm_router.config import KubernetesDiscoverySettings
from sagellm_router.discovery.kubernetes import KubernetesDiscovery
from tests.kubeemu import running_emulator

CRD = Path(__file__).resolve().parents[3] / "crds" / "sagellm.io_inferencepools.yaml"
G, V, P = "sagellm.io", "v1alpha1", "inferencepools"
MERGE = "application/merge-patch+json"


def pool(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "InferencePool",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {
            "model": {"name": f"model-{name}", "source": "org/model", "parameters": 8},
            "engine": {"kind": "Simulator"},
            "roles": {"general": {"replicas": 1}},
            "scheduling": {"routing": "locality"},
        },
    }


def served(name: str, *endpoints: dict[str, Any]) -> dict[str, Any]:
    """The status the operator writes: all the router reads (it never reads the spec)."""
    status = {"model": f"model-{name}", "task": "generate",
              "scheduling": {"routing": "locality"}, "endpoints": list(endpoints)}  # fmt: skip
    return {"status": status}


def endpoint(draining: bool = False) -> dict[str, Any]:
    return {"instance": "a-0", "role": "General", "url": "http://10.0.0.5:8000",
            "ready": True, "draining": draining}  # fmt: skip


async def test_list_then_watch_inference_pools() -> None:
    async with running_emulator() as emu:
        emu.store.register_crd(yaml.safe_load(CRD.read_text()))
        config = k8s.Configuration(host=str(emu.url).rstrip("/"))

        async def make_client() -> k8s.ApiClient:
            return k8s.ApiClient(config)

        async with k8s.ApiClient(config) as api_client:
            api = k8s.CustomObjectsApi(api_client)
            await api.create_namespaced_custom_object(G, V, "ns", P, pool("a"))
            await api.patch_namespaced_custom_object_status(
                G, V, "ns", P, "a", served("a"), _content_type=MERGE
            )
            settings = KubernetesDiscoverySettings(type="kubernetes", namespace="ns")
            updates = KubernetesDiscovery(settings, api_client=make_client).updates()
            (listed,) = await anext(updates)
            assert (listed.name, listed.model, listed.routing, listed.endpoints) == (
                "ns/a",
                "model-a",
                "locality",
                (),
            )
            status = served("a", endpoint())
            await api.patch_namespaced_custom_object_status(
                G, V, "ns", P, "a", status, _content_type=MERGE
            )
            (ready,) = await anext(updates)
            assert [(e.url, e.ready, e.draining) for e in ready.endpoints] == [
                ("http://10.0.0.5:8000", True, False)
            ]
            status = served("a", endpoint(draining=True))
            await api.patch_namespaced_custom_object_status(
                G, V, "ns", P, "a", status, _content_type=MERGE
            )
            (draining,) = await anext(updates)
            assert draining.endpoints[0].draining
            await api.create_namespaced_custom_object(G, V, "ns", P, pool("b"))
            await api.patch_namespaced_custom_object_status(
                G, V, "ns", P, "b", served("b"), _content_type=MERGE
            )  # listed once the operator has written its status
            assert [p.name for p in await anext(updates)] == ["ns/a", "ns/b"]
            await api.delete_namespaced_custom_object(G, V, "ns", P, "a")
            assert [p.name for p in await anext(updates)] == ["ns/b"]
            await updates.aclose()
