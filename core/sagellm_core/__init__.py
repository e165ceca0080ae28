"""sageLLM core: typed API models, labels, conditions, the parallelism planner and vLLM helpers.

Pure code only: no Kubernetes, kopf or aiohttp imports (enforced by import-linter).
"""

__version__ = "0.1.0"
