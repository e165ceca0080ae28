"""The emulator over HTTP: watch streams, discovery, background GC, real client compatibility."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client as k8s

from tests.kubeemu import KubeEmulator, Store, running_emulator

PODS = "/api/v1/namespaces/ns/pods"


@pytest.fixture
async def emu() -> AsyncIterator[KubeEmulator]:
    async with running_emulator() as emulator:
        yield emulator


@pytest.fixture
async def http(emu: KubeEmulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=str(emu.url)) as session:
        yield session


async def _watch(
    http: aiohttp.ClientSession, params: dict[str, str], count: int
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with http.get(PODS, params={"watch": "true", **params}) as resp:
        async for line in resp.content:
            if line.strip():
                events.append(json.loads(line))
            if len(events) >= count:
                break
    return events


async def _create(http: aiohttp.ClientSession, name: str, **labels: str) -> dict[str, Any]:
    resp = await http.post(PODS, json={"metadata": {"name": name, "labels": labels}})
    assert resp.status == 201
    body: dict[str, Any] = await resp.json()
    return body


async def test_watch_resumes_from_resource_version(http: aiohttp.ClientSession) -> None:
    first = await _create(http, "a")
    await _create(http, "b")
    await _create(http, "c")
    since = first["metadata"]["resourceVersion"]
    events = await _watch(http, {"resourceVersion": since}, 2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "b"),
        ("ADDED", "c"),
    ]


async def test_watch_streams_live_changes(http: aiohttp.ClientSession) -> None:
    listing = await (await http.get(PODS)).json()
    watcher = asyncio.create_task(
        _watch(http, {"resourceVersion": listing["metadata"]["resourceVersion"]}, 3)
    )
    await _create(http, "live")
    patch = {"metadata": {"labels": {"x": "y"}}}
    headers = {"Content-Type": "application/merge-patch+json"}
    await http.patch(f"{PODS}/live", json=patch, headers=headers)
    await http.delete(f"{PODS}/live")
    events = await asyncio.wait_for(watcher, 10)
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]


async def test_watch_with_label_selector_translates_transitions(
    http: aiohttp.ClientSession,
) -> None:
    start = await _create(http, "p")
    watcher = asyncio.create_task(
        _watch(
            http,
            {"resourceVersion": start["metadata"]["resourceVersion"], "labelSelector": "app=x"},
            2,
        )
    )
    headers = {"Content-Type": "application/merge-patch+json"}
    await http.patch(f"{PODS}/p", json={"metadata": {"labels": {"app": "x"}}}, headers=headers)
    await http.patch(f"{PODS}/p", json={"metadata": {"labels": {"app": "z"}}}, headers=headers)
    events = await asyncio.wait_for(watcher, 10)
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]  # entered, then left the selection


async def test_watch_initial_events_end_with_bookmark(http: aiohttp.ClientSession) -> None:
    await _create(http, "a")
    params = {"sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan"}
    events = await _watch(http, params, 2)
    assert events[0]["type"] == "ADDED"
    assert events[1]["type"] == "BOOKMARK"
    annotations = events[1]["object"]["metadata"]["annotations"]
    assert annotations["k8s.io/initial-events-end"] == "true"


async def test_watch_timeout_seconds_ends_the_stream(http: aiohttp.ClientSession) -> None:
    params = {"watch": "true", "timeoutSeconds": "1", "resourceVersion": "0"}
    async with http.get(PODS, params=params) as resp:
        body = await asyncio.wait_for(resp.read(), 10)
    assert body == b""


async def test_watch_from_expired_version_is_410() -> None:
    async with (
        running_emulator(store=Store(history=2)) as emu,
        aiohttp.ClientSession(base_url=str(emu.url)) as http,
    ):
        for name in "abcde":
            await _create(http, name)
        events = await _watch(http, {"resourceVersion": "1"}, 1)
    assert events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410


async def test_delete_collects_dependents_in_background(
    emu: KubeEmulator, http: aiohttp.ClientSession
) -> None:
    owner = await _create(http, "owner")
    ref = {"apiVersion": "v1", "kind": "Pod", "name": "owner", "uid": owner["metadata"]["uid"]}
    await http.post(PODS, json={"metadata": {"name": "dep", "ownerReferences": [ref]}})
    assert (await http.delete(f"{PODS}/owner")).status == 200
    for _ in range(100):
        if (await http.get(f"{PODS}/dep")).status == 404:
            break
        await asyncio.sleep(0.01)
    assert (await http.get(f"{PODS}/dep")).status == 404


async def test_discovery_lists_registered_crds(http: aiohttp.ClientSession) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.io"},
        "spec": {
            "group": "example.io",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget", "singular": "widget"},
            "versions": [{"name": "v1", "served": True, "storage": True,
                          "subresources": {"status": {}}}],
        },
    }  # fmt: skip
    assert (await http.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd)).ok
    listing = await (await http.get("/apis/example.io/v1")).json()
    names = {r["name"]: r for r in listing["resources"]}
    assert names["widgets"]["namespaced"] is True
    assert "widgets/status" in names
    apis = await (await http.get("/apis")).json()
    assert "example.io" in {g["name"] for g in apis["groups"]}


async def test_kubernetes_asyncio_client_round_trip(emu: KubeEmulator) -> None:
    config = k8s.Configuration(host=str(emu.url).rstrip("/"))
    async with k8s.ApiClient(config) as api:
        core = k8s.CoreV1Api(api)
        pod = k8s.V1Pod(
            metadata=k8s.V1ObjectMeta(name="kc", labels={"a": "b"}),
            spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="c", image="i")]),
        )
        await core.create_namespaced_pod("ns", pod)
        listed = await core.list_namespaced_pod("ns", label_selector="a=b")
        assert [p.metadata.name for p in listed.items] == ["kc"]
        await core.patch_namespaced_pod_status("kc", "ns", {"status": {"podIP": "10.0.0.9"}})
        fetched = await core.read_namespaced_pod("kc", "ns")
        assert fetched.status.pod_ip == "10.0.0.9"
        with pytest.raises(k8s.ApiException) as err:
            await core.read_namespaced_pod("missing", "ns")
        assert err.value.status == 404
