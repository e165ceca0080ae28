"""Lifecycle against the emulated API: scale, self-heal, deletion, restart, rollout, LWS."""

from __future__ import annotations

from typing import Any

from operator_harness import BASE, NS, cluster, operator_running, sample

from e2e.waiting import eventually
from sagellm_core.api import labels as L

Obj = dict[str, Any]


def _general(name: str, replicas: int = 1) -> Obj:
    pool = sample("general-pool", name)
    pool["spec"]["roles"]["general"]["replicas"] = replicas
    return pool


def _names(items: list[Obj]) -> list[str]:
    return sorted(i["metadata"]["name"] for i in items)


def _slots(items: list[Obj]) -> list[str]:
    """Instance names without their spec-hash suffix: ``<pool>-<role>-<index>``."""
    return sorted(i["metadata"]["name"].rsplit("-", 1)[0] for i in items)


async def _ready(c: Any, name: str, n: int) -> Obj | None:
    status: Obj = (await c.pool(name)).get("status") or {}
    ok = status.get("phase") == "Ready" and status.get("readyReplicas") == n
    return status if ok else None


async def test_scale_up_then_down_drains_before_deleting() -> None:
    async with cluster() as c, operator_running(c.emu):
        await c.create_pool(_general("sc"))
        await eventually(lambda: _ready(c, "sc", 1))
        await c.patch_pool("sc", {"spec": {"roles": {"general": {"replicas": 3}}}})
        await eventually(lambda: _ready(c, "sc", 3))
        assert _slots(await c.instances("sc")) == [f"sc-general-{i}" for i in range(3)]
        await c.patch_pool("sc", {"spec": {"roles": {"general": {"replicas": 1}}}})

        async def drained() -> bool:
            return _slots(await c.instances("sc")) == ["sc-general-0"]

        await eventually(drained)
        reasons = [e["reason"] for e in await c.events("sc")]
        # The fake kubelet runs no engine, so no idle read succeeds: the drain timeout ends it.
        assert reasons.index("Draining") < reasons.index("DrainTimeout")
        await eventually(lambda: _ready(c, "sc", 1))
        pods = await eventually(lambda: _count(c.pods(f"{L.LABEL_POOL}=sc"), 1))
        assert pods[0]["metadata"]["labels"][L.LABEL_INSTANCE].startswith("sc-general-0-")


async def test_a_scale_out_during_a_drain_starts_a_new_index_at_once() -> None:
    """The fake kubelet runs no engine, so a drain lasts until its timeout (60 s): a scale-out
    meanwhile must not wait for the draining instance's name."""
    async with cluster() as c, operator_running(c.emu, drain=60):
        await c.create_pool(_general("so", 3))
        await eventually(lambda: _ready(c, "so", 3))
        await c.patch_pool("so", {"spec": {"roles": {"general": {"replicas": 2}}}})
        await eventually(lambda: _serving(c, "so", draining=1), "one instance draining")
        await c.patch_pool("so", {"spec": {"roles": {"general": {"replicas": 3}}}})
        found = await eventually(lambda: _serving(c, "so", draining=1, ready=3),
                                 "three Ready instances beside the draining one", 30)  # fmt: skip
        assert _slots(found) == [f"so-general-{i}" for i in range(4)], _slots(found)


async def _serving(c: Any, name: str, draining: int, ready: int | None = None) -> list[Obj] | None:
    """The pool's instances once ``draining`` of them drain and ``ready`` others are Ready."""
    found = await c.instances(name)
    marked = [
        i for i in found if (i["metadata"].get("annotations") or {}).get(L.ANNOTATION_DRAINING)
    ]
    others = [i for i in found if i not in marked and (i.get("status") or {}).get("ready")]
    ok = len(marked) == draining and (ready is None or len(others) == ready)
    return found if ok else None


async def test_self_heal_recreates_deleted_pod_and_instance() -> None:
    async with cluster() as c, operator_running(c.emu):
        await c.create_pool(_general("heal"))
        await eventually(lambda: _ready(c, "heal", 1))
        pod = (await c.pods(f"{L.LABEL_POOL}=heal"))[0]
        await c.http.delete(f"/api/v1/namespaces/{NS}/pods/{pod['metadata']['name']}")

        async def replaced() -> list[Obj]:
            pods = await c.pods(f"{L.LABEL_POOL}=heal")
            return [p for p in pods if p["metadata"]["uid"] != pod["metadata"]["uid"]]

        again = await eventually(replaced)  # once the kubelet has ended the deleted pod
        assert again[0]["metadata"]["name"] == pod["metadata"]["name"]  # deterministic name
        inst = (await c.instances("heal"))[0]
        await c.http.delete(f"{BASE}/executioninstances/{inst['metadata']['name']}")

        async def recreated() -> bool:
            items = await c.instances("heal")
            return bool(items) and items[0]["metadata"]["uid"] != inst["metadata"]["uid"]

        await eventually(recreated)
        await eventually(lambda: _ready(c, "heal", 1))


async def test_deleting_pool_removes_instances_and_pods() -> None:
    async with cluster() as c, operator_running(c.emu):
        await c.create_pool(sample("pd-pool", "gone"))
        await eventually(lambda: c.pods(f"{L.LABEL_POOL}=gone"))
        await c.http.delete(f"{BASE}/inferencepools/gone")

        async def empty() -> bool:
            return not await c.instances("gone") and not await c.pods(f"{L.LABEL_POOL}=gone")

        await eventually(empty)


async def test_operator_restart_creates_no_duplicates() -> None:
    async with cluster() as c:
        async with operator_running(c.emu):
            await c.create_pool(_general("rs"))
            await eventually(lambda: _ready(c, "rs", 1))
        before = await c.instances("rs")
        pods_before = await c.pods(f"{L.LABEL_POOL}=rs")
        async with operator_running(c.emu):
            await eventually(lambda: _ready(c, "rs", 1))
            status = await c.pool("rs")
        after = await c.instances("rs")
        assert [i["metadata"]["uid"] for i in after] == [i["metadata"]["uid"] for i in before]
        assert _names(await c.pods(f"{L.LABEL_POOL}=rs")) == _names(pods_before)
        assert status["status"]["readyReplicas"] == 1


async def test_rolling_update_surges_then_drains_one_index_at_a_time() -> None:
    async with cluster() as c, operator_running(c.emu):
        await c.create_pool(_general("ru", 3))
        await eventually(lambda: _ready(c, "ru", 3))
        old = _names(await c.instances("ru"))
        min_ready, max_live = [3], [0]

        async def updated() -> bool:
            status = (await c.pool("ru")).get("status") or {}
            min_ready[0] = min(min_ready[0], status.get("readyReplicas", 0))
            max_live[0] = max(max_live[0], len(await c.instances("ru")))
            args = [p["spec"]["containers"][0]["args"] for p in await c.pods(f"{L.LABEL_POOL}=ru")]
            return len(args) == 3 and all("--enforce-eager" in a for a in args)

        await c.patch_pool("ru", {"spec": {"engine": {"extraArgs": ["--enforce-eager"]}}})
        await eventually(updated, within=90)
        assert min_ready[0] >= 3  # the new instance is ready before the old one drains
        assert max_live[0] > 3  # old and new side by side
        new = _names(await c.instances("ru"))
        assert _slots(await c.instances("ru")) == [f"ru-general-{i}" for i in range(3)]
        assert not set(new) & set(old)
        events = [(e["reason"], e["message"]) for e in await c.events("ru")]
        drained = [m.split()[-4] for r, m in events if r == "Draining"]
        assert sorted(drained) == old  # every old instance drained before it went
        assert all(r in ("Draining", "DeletedInstance", "DrainTimeout", "CreatedInstance")
                   for r, _ in events)  # fmt: skip


async def test_multinode_plan_yields_leaderworkerset() -> None:
    async with cluster(lws=True) as c, operator_running(c.emu):
        await c.create_pool(sample("multinode-70b-pool", "big"))
        lws_path = f"/apis/leaderworkerset.x-k8s.io/v1/namespaces/{NS}/leaderworkersets"
        items = await eventually(lambda: c.items(lws_path, f"{L.LABEL_POOL}=big"))
        tmpl = items[0]["spec"]["leaderWorkerTemplate"]
        assert tmpl["size"] == 2
        worker = tmpl["workerTemplate"]["spec"]["containers"][0]["args"]
        assert "--headless" in worker
        assert "$(LWS_WORKER_INDEX)" in worker
        leader = tmpl["leaderTemplate"]["spec"]["containers"][0]
        assert leader["resources"]["limits"]["nvidia.com/gpu"] == 8


async def test_multinode_without_lws_crd_reports_clearly() -> None:
    async with cluster() as c, operator_running(c.emu):
        await c.create_pool(sample("multinode-70b-pool", "nolws"))

        async def failed() -> Obj | None:
            items = await c.instances("nolws")
            status: Obj = (items[0].get("status") or {}) if items else {}
            return status if status.get("phase") == "Failed" else None

        status = await eventually(failed)
        assert "LeaderWorkerSet" in status["message"]
        assert status["conditions"][0]["reason"] == L.REASON_LWS_MISSING


async def _count(coro: Any, n: int) -> list[Obj] | None:
    items: list[Obj] = await coro
    return items if len(items) == n else None


async def test_pool_drain_timeout_sizes_the_pods_termination() -> None:
    async with cluster() as c, operator_running(c.emu, drain=45, bound=2):
        own = _general("own")
        own["spec"]["lifecycle"] = {"drainTimeoutSeconds": 7}
        await c.create_pool(own)
        await c.create_pool(_general("dflt"))
        own_pod = (await eventually(lambda: _count(c.pods(f"{L.LABEL_POOL}=own"), 1)))[0]
        dflt_pod = (await eventually(lambda: _count(c.pods(f"{L.LABEL_POOL}=dflt"), 1)))[0]
        assert own_pod["spec"]["terminationGracePeriodSeconds"] == 2 + 7 + 30
        assert dflt_pod["spec"]["terminationGracePeriodSeconds"] == 2 + 45 + 30  # --drain-timeout
        hook = own_pod["spec"]["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
        assert hook[-3:] == ["2", "7", "8000"]
        assert (await c.instances("own"))[0]["spec"]["drainTimeoutSeconds"] == 7


async def test_a_terminating_pod_shows_as_a_draining_endpoint_at_once() -> None:
    async with cluster() as c, operator_running(c.emu):
        await c.create_pool(_general("term"))
        await eventually(lambda: _ready(c, "term", 1))
        pod = (await c.pods(f"{L.LABEL_POOL}=term"))[0]
        c.kubelet.hold_deletions = True  # the pod stays terminating until the test lets go
        await c.http.delete(f"/api/v1/namespaces/{NS}/pods/{pod['metadata']['name']}")

        async def draining() -> Obj | None:
            status = (await c.pool("term")).get("status") or {}
            eps = status.get("endpoints") or []
            return status if eps and eps[0]["draining"] and not eps[0]["ready"] else None

        status = await eventually(draining)
        assert status["endpoints"][0]["url"] == f"http://{pod['status']['podIP']}:8000"
        inst = (await c.instances("term"))[0]
        assert inst["status"]["phase"] == "Draining"
        assert "terminating" in inst["status"]["message"]
        c.kubelet.hold_deletions = False
        await c.kubelet.finish_deletions()
        await eventually(lambda: _ready(c, "term", 1))
