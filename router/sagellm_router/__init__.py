"""sageLLM router: OpenAI-compatible scheduling and routing in front of vLLM engines."""
