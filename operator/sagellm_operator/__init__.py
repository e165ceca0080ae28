"""sageLLM operator: reconciles InferencePool and ExecutionInstance resources with kopf."""
