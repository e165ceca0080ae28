# � OLD (Deprecated)
from sage.llm.sageLLM.control_plane import ControlPlaneManager
from sage.llm.sageLLM.control_plane.strategies import HybridSchedulingPolicy

# ✅ NEW (Correct)
from sage.llm.control_plane import ControlPlaneManager
from sage.llm.control_plane.strategies import HybridSchedulingPolicy
