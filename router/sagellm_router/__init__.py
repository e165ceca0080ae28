"""sageLLM router: OpenAI-compatible scheduling and routing in front of vLLM engines.

The embeddable Python API (``ControlPlaneManager``, ``UnifiedInferenceClient``) is the
``control_plane`` package, which drives this package's pipeline.
"""
