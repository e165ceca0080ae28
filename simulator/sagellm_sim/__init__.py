"""sageLLM simulator: a vLLM-compatible engine with a performance model, for GPU-less runs."""
