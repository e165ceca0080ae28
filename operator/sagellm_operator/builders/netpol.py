"""The NetworkPolicy that isolates one pool's engine pods.

Engines have no authentication of their own, so whoever reaches their port skips the router's
keys, quotas and scheduling. The policy admits, to the pods of one pool: the pool's own pods on
any port (KV transfer, multi-node rendezvous and NCCL pick their ports), the configured peers
(the router, the operator, the metrics scraper) on the engine's HTTP port only, and, for a pool
whose engines publish KV-cache events (``scheduling.routing: kv_aware``), the event peers (the
routers) on the publisher and replay ports.

Inputs: the pool object, the peers (NetworkPolicyPeer objects), the engine port, the event peers
(empty: no event ports). Output: the manifest; the caller makes the pool its owner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sagellm_core.api import labels as L
from sagellm_core.vllm_args import KV_EVENTS_PORT, KV_EVENTS_REPLAY_PORT

Obj = dict[str, Any]
Peers = Sequence[Mapping[str, Any]]


def network_policy_name(pool: str) -> str:
    return f"{pool}-engines"


def _rule(peers: Peers, ports: Sequence[int]) -> Obj:
    return {"from": [dict(p) for p in peers],
            "ports": [{"port": port, "protocol": "TCP"} for port in ports]}  # fmt: skip


def build_network_policy(pool: Obj, peers: Peers, port: int, event_peers: Peers = ()) -> Obj:
    name = pool["metadata"]["name"]
    labels = {L.LABEL_POOL: name, L.LABEL_MANAGED_BY: L.MANAGED_BY_VALUE}
    selector = {"matchLabels": labels}
    ingress: list[Obj] = [{"from": [{"podSelector": selector}]}]
    if peers:
        ingress.append(_rule(peers, [port]))
    if event_peers:
        ingress.append(_rule(event_peers, [KV_EVENTS_PORT, KV_EVENTS_REPLAY_PORT]))
    meta = {"name": network_policy_name(name), "namespace": pool["metadata"]["namespace"]}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {**meta, "labels": dict(labels)},
        "spec": {"podSelector": selector, "policyTypes": ["Ingress"], "ingress": ingress},
    }
