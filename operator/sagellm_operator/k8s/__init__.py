"""The only Kubernetes API I/O of the operator (kubernetes_asyncio)."""

from sagellm_operator.k8s.client import Kube, connect

__all__ = ["Kube", "connect"]
