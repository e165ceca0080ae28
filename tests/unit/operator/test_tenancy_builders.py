"""Pure operator pieces of tenancy: the Accepted condition, engine pod security, plan limits."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from sagellm_core.api import ExecutionInstanceSpec, InferencePoolSpec, Role
from sagellm_core.api import labels as L
from sagellm_core.ownership import Claim, claim_of
from sagellm_core.planner import plan_pool
from sagellm_core.vllm_args import KV_EVENTS_PORT, KV_EVENTS_REPLAY_PORT
from sagellm_operator.builders.args import instance_args
from sagellm_operator.builders.instance import build_instance
from sagellm_operator.builders.limits import limit_errors
from sagellm_operator.builders.lws import build_lws
from sagellm_operator.builders.netpol import build_network_policy
from sagellm_operator.builders.pod import build_pod
from sagellm_operator.cli import parse_peers
from sagellm_operator.reconcile.accepted import accepted_condition, newly_rejected, remember
from sagellm_operator.settings import PodDefaults

NOW = "2026-01-02T00:00:00Z"


def _pool(ns: str, name: str, created: str, model: str = "shared", **spec: Any) -> dict[str, Any]:
    body = {"model": {"name": model, "source": "org/m", "parameters": 1},
            "roles": {"general": {"replicas": 1}}, **spec}  # fmt: skip
    return {
        "apiVersion": L.API_VERSION, "kind": L.POOL_KIND, "spec": body,
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "generation": 1,
                     "creationTimestamp": created},
    }  # fmt: skip


VICTIM = _pool("tenant-a", "chat", "2026-01-01T00:00:00Z")
EVIL = _pool("a-tenant-b", "evil", "2026-01-01T00:01:00Z")


def _claims(*pools: dict[str, Any]) -> list[Claim]:
    return [c for c in map(claim_of, pools) if c is not None]


def test_the_later_pool_is_not_accepted() -> None:
    peers = _claims(EVIL, VICTIM)
    owner = accepted_condition(VICTIM, peers, NOW)
    assert (owner["status"], owner["reason"]) == ("True", L.REASON_ACCEPTED)
    loser = accepted_condition(EVIL, peers, NOW)
    assert (loser["status"], loser["reason"]) == ("False", L.REASON_MODEL_NAME_CONFLICT)
    assert "tenant-a/chat" in loser["message"]
    assert newly_rejected(EVIL, loser)
    stored = {**EVIL, "status": {"conditions": [loser]}}
    assert not newly_rejected(stored, accepted_condition(stored, peers, "later"))
    assert accepted_condition(stored, peers, "later")["lastTransitionTime"] == NOW
    assert accepted_condition(EVIL, _claims(EVIL), NOW)["status"] == "True", "alone it owns it"
    renamed = _pool("a-tenant-b", "evil", EVIL["metadata"]["creationTimestamp"], model="own")
    assert accepted_condition(renamed, peers, NOW)["status"] == "True", "its own claim is current"


def test_remember_names_the_pools_whose_acceptance_changes() -> None:
    ctx = SimpleNamespace(claims={})
    assert remember(ctx, VICTIM) == set()  # type: ignore[arg-type]
    assert remember(ctx, EVIL) == set(), "a later claim changes nobody else"  # type: ignore[arg-type]
    older = _pool("b", "older", "2025-01-01T00:00:00Z")
    assert remember(ctx, older) == {"tenant-a/chat"}, "the displaced owner"  # type: ignore[arg-type]
    assert remember(ctx, older, deleted=True) == {"tenant-a/chat"}  # type: ignore[arg-type]
    assert remember(ctx, VICTIM, deleted=True) == {"a-tenant-b/evil"}, "the new owner"  # type: ignore[arg-type]
    assert set(ctx.claims) == {"a-tenant-b/evil"}


def _instance_pod(engine: dict[str, Any], defaults: PodDefaults) -> dict[str, Any]:
    pool = _pool("ns", "p", "2026-01-01T00:00:00Z", engine=engine)
    spec = InferencePoolSpec.model_validate(pool["spec"])
    plan = plan_pool(spec).plans[Role.GENERAL]
    args = instance_args(spec, Role.GENERAL, plan, 8000)
    inst = build_instance(pool, spec, Role.GENERAL, plan, 0, args, 600)
    inst["metadata"]["uid"] = "uid-inst"
    return build_pod(inst, ExecutionInstanceSpec.model_validate(inst["spec"]), defaults)


@pytest.mark.parametrize(
    ("kind", "uid", "non_root"),
    [("Simulator", None, 10001), ("vLLM", None, None), ("vLLM", 1000, 1000)],
)
def test_engine_pods_are_restricted(kind: str, uid: int | None, non_root: int | None) -> None:
    pod = _instance_pod({"kind": kind}, PodDefaults(vllm_run_as_user=uid))
    (container,) = pod["spec"]["containers"]
    csc, psc = container["securityContext"], pod["spec"]["securityContext"]
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["capabilities"] == {"drop": ["ALL"]}
    assert csc["seccompProfile"] == psc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert csc["runAsNonRoot"] is (non_root is not None)
    assert csc.get("runAsUser") == non_root
    assert psc.get("fsGroup") == non_root
    assert pod["metadata"]["labels"][L.LABEL_MANAGED_BY] == L.MANAGED_BY_VALUE


def test_multi_node_groups_are_restricted_too() -> None:
    pool = _pool("ns", "big", "2026-01-01T00:00:00Z", engine={"gpusPerNode": 1})
    pool["spec"]["model"]["parameters"] = 70
    spec = InferencePoolSpec.model_validate(pool["spec"])
    plan = plan_pool(spec).plans[Role.GENERAL]
    assert plan.nodes_per_instance > 1
    args = instance_args(spec, Role.GENERAL, plan, 8000)
    inst = build_instance(pool, spec, Role.GENERAL, plan, 0, args, 600)
    inst["metadata"]["uid"] = "uid-inst"
    inst_spec = ExecutionInstanceSpec.model_validate(inst["spec"])
    templates = build_lws(inst, inst_spec, PodDefaults())["spec"]["leaderWorkerTemplate"]
    for key in ("leaderTemplate", "workerTemplate"):
        pod = templates[key]["spec"]
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_a_plan_beyond_the_node_limit_is_refused_with_the_planners_fix() -> None:
    spec = InferencePoolSpec.model_validate({
        "model": {"name": "m", "source": "org/m", "parameters": 400},
        "engine": {"gpuMemoryGiB": 24, "gpusPerNode": 2}, "roles": {"general": {"replicas": 1}},
    })  # fmt: skip
    planned = plan_pool(spec)
    assert planned.errors == ()
    assert planned.plans[Role.GENERAL].nodes_per_instance == 20
    (error,) = limit_errors("big", planned, max_nodes=8)
    assert "needs 20 nodes per instance, more than this operator's maximum of 8" in error
    assert "Fix: " in error
    assert "quantize" in error
    assert limit_errors("big", planned, max_nodes=20) == []


def test_multi_node_pools_need_a_shorter_name() -> None:
    spec = InferencePoolSpec.model_validate({
        "model": {"name": "m", "source": "org/m", "parameters": 70},
        "engine": {"gpusPerNode": 1}, "roles": {"general": {"replicas": 1}},
    })  # fmt: skip
    planned = plan_pool(spec)
    nodes = planned.plans[Role.GENERAL].nodes_per_instance
    assert 1 < nodes <= 8
    assert limit_errors("n" * L.MAX_MULTI_NODE_POOL_NAME, planned, 8) == []
    (error,) = limit_errors("n" * (L.MAX_MULTI_NODE_POOL_NAME + 1), planned, 8)
    assert f"at most {L.MAX_MULTI_NODE_POOL_NAME} characters" in error


def test_network_policy_without_peers_admits_only_the_pools_own_pods() -> None:
    policy = build_network_policy(VICTIM, (), 8000)
    assert policy["metadata"]["name"] == "chat-engines"
    assert policy["spec"]["ingress"] == [{"from": [{"podSelector": policy["spec"]["podSelector"]}]}]


@pytest.mark.parametrize(
    ("text", "ok"),
    [(None, True), ("[]", True), ('[{"podSelector": {}}]', True), ("{}", False),
     ("[{}]", False), ("[1]", False), ("not json", False)],
)  # fmt: skip
def test_engine_ingress_peers_must_be_a_list_of_peers(text: str | None, ok: bool) -> None:
    if ok:
        parse_peers(text)
    else:
        with pytest.raises(ValueError, match="engine-ingress-peers"):
            parse_peers(text)


def test_network_policy_opens_the_kv_event_ports_to_the_event_peers_only() -> None:
    engines = [{"podSelector": {"matchLabels": {"app": "router"}}},
               {"podSelector": {"matchLabels": {"app": "scraper"}}}]  # fmt: skip
    routers = engines[:1]
    policy = build_network_policy(VICTIM, engines, 8000, routers)
    own, http, events = policy["spec"]["ingress"]
    assert http == {"from": engines, "ports": [{"port": 8000, "protocol": "TCP"}]}
    assert events == {"from": routers, "ports": [
        {"port": KV_EVENTS_PORT, "protocol": "TCP"},
        {"port": KV_EVENTS_REPLAY_PORT, "protocol": "TCP"},
    ]}  # fmt: skip
    without = build_network_policy(VICTIM, engines, 8000)["spec"]["ingress"]
    assert without == [own, http]
