"""``UnifiedInferenceClient``: chat, completions, embeddings and streaming against a router URL
or an embedded ``ControlPlaneManager``, with typed results, retries and typed errors."""

from sagellm_router.client.client import UnifiedInferenceClient
from sagellm_router.client.types import Chunk, ClientError, Completion, Embeddings, Usage

__all__ = ["Chunk", "ClientError", "Completion", "Embeddings", "UnifiedInferenceClient", "Usage"]
