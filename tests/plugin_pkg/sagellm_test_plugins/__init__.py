"""Example sageLLM plugins: a routing strategy and a scheduling policy (see pyproject.toml)."""
