"""``UnifiedInferenceClient``: chat, completions, embeddings and streaming against a router URL
or an embedded ``ControlPlaneManager``, with typed results, retries and typed errors."""

from control_plane.client.client import UnifiedInferenceClient
from control_plane.client.types import Chunk, ClientError, Completion, Embeddings, Usage

__all__ = ["Chunk", "ClientError", "Completion", "Embeddings", "UnifiedInferenceClient", "Usage"]
