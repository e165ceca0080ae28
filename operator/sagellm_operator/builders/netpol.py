"""The NetworkPolicy that isolates one pool's engine pods.

Engines have no authentication of their own, so whoever reaches their port skips the router's
keys, quotas and scheduling. The policy admits, to the pods of one pool: the pool's own pods on
any port (KV transfer, multi-node rendezvous and NCCL pick their ports), and the configured
peers (the router, the operator, the metrics scraper) on the engine's HTTP port only.

Inputs: the pool object, the peers (NetworkPolicyPeer objects), the engine port. Output: the
manifest, owned by the pool so it goes with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sagellm_core.api import labels as L
from sagellm_operator.builders.instance import owner_reference

Obj = dict[str, Any]


def network_policy_name(pool: str) -> str:
    return f"{pool}-engines"


def build_network_policy(pool: Obj, peers: Sequence[Mapping[str, Any]], port: int) -> Obj:
    name = pool["metadata"]["name"]
    selector = {"matchLabels": {L.LABEL_POOL: name, L.LABEL_MANAGED_BY: L.MANAGED_BY_VALUE}}
    ingress: list[Obj] = [{"from": [{"podSelector": selector}]}]
    if peers:
        ingress.append({"from": [dict(p) for p in peers],
                        "ports": [{"port": port, "protocol": "TCP"}]})  # fmt: skip
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": network_policy_name(name),
            "namespace": pool["metadata"]["namespace"],
            "labels": {L.LABEL_POOL: name, L.LABEL_MANAGED_BY: L.MANAGED_BY_VALUE},
            "ownerReferences": [owner_reference(pool)],
        },
        "spec": {"podSelector": selector, "policyTypes": ["Ingress"], "ingress": ingress},
    }
