"""Named value sets the chart tests render: the defaults and the non-default features."""

from __future__ import annotations

from typing import Any

SIM_POOL_SPEC: dict[str, Any] = {
    "model": {"name": "tiny", "source": "sim/tiny", "parameters": 1, "maxModelLen": 4096},
    "engine": {"kind": "Simulator", "gpuMemoryGiB": 24},
    "roles": {"general": {"replicas": 2}},
    "scheduling": {"routing": "prefix_aware"},
}

VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "namespaced": {"watch": {"scope": "namespace"}},
    "cluster": {"watch": {"scope": "cluster", "namespaces": ["team-a", "team-b"]}},
    "namespaced-other-ns": {"watch": {"scope": "namespace", "namespace": "models"}},
    "api-keys": {"router": {"apiKeys": {"existingSecret": "sagellm-api-keys", "secretKey": "k"}}},
    "hpa": {
        "router": {
            "autoscaling": {
                "enabled": True,
                "minReplicas": 2,
                "maxReplicas": 6,
                "targetMemoryUtilizationPercentage": 80,
            }
        }
    },
    "pdb": {"router": {"podDisruptionBudget": {"enabled": True, "minAvailable": "50%"}}},
    "pdb-max-unavailable": {
        "router": {
            "podDisruptionBudget": {"enabled": True, "minAvailable": None, "maxUnavailable": 1}
        }
    },
    "monitoring": {
        "metrics": {
            "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
            "dashboard": {"enabled": True, "namespace": "monitoring"},
        }
    },
    "pools": {
        "pools": [
            {"name": "sim-tiny", "spec": SIM_POOL_SPEC},
            {
                "name": "sim-b",
                "namespace": "team-b",
                "labels": {"team": "b"},
                "spec": SIM_POOL_SPEC,
            },
        ]
    },
    "peering": {"operator": {"replicas": 2, "peering": True}},
    "router-only": {"operator": {"enabled": False}, "router": {"service": {"type": "NodePort"}}},
    "digest": {"image": {"repository": "registry.local/sagellm", "digest": "sha256:" + "a" * 64}},
    "router-config": {
        "router": {
            "port": 9000,
            "config": {
                "routing": {"default": "power_of_two", "params": {"prefix_aware": {"x": 1}}},
                "limits": {"max_concurrent_requests": 10},
            },
        }
    },
}
