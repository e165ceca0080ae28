"""Make the repository root importable so tests can use the ``tests.kubeemu`` harness."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[3])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
