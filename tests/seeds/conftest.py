"""Seed tests reuse the router tests' process helpers (simulator and router subprocesses)."""

from __future__ import annotations

import sys
from pathlib import Path

ROUTER_TESTS = str(Path(__file__).resolve().parents[1] / "integration" / "router")
if ROUTER_TESTS not in sys.path:
    sys.path.insert(0, ROUTER_TESTS)
