"""Every ```python block of the docs below runs against simulator engines started from the
doc's own ``sagellm sim`` lines (same ports). Only blocks marked
``<!-- snippet: skip (needs a cluster | needs a GPU | needs vLLM installed and a model) -->``
on the line before the fence are skipped."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from snippets import ALLOWED_SKIPS, Block, blocks, sim_commands

ROOT = Path(__file__).resolve().parents[2]
ENGINE_DOCS = ["integration.md", "custom-scheduling.md", "metrics.md", "topology.md",
               "fault-tolerance.md"]  # fmt: skip
# Docs whose python blocks start what they need themselves (their bash blocks are not run).
SELF_CONTAINED_DOCS = ["scheduling.md", "simulator.md"]
DOCS = ENGINE_DOCS + SELF_CONTAINED_DOCS
SAGELLM = str(Path(sys.executable).parent / "sagellm")
PLUGIN_PKG = str(ROOT / "tests" / "plugin_pkg")


def _cases() -> list[tuple[str, Block]]:
    return [(doc, b) for doc in DOCS for b in blocks(ROOT / "docs" / doc) if b.lang == "python"]


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"engine for {url} exited with {proc.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as resp:
            if resp.status == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{url} not healthy within 30s")


@pytest.fixture(scope="module")
def engines() -> Iterator[None]:
    """The engines every doc asks for (deduplicated by port), fast time scale, loopback."""
    by_port: dict[str, list[str]] = {}
    for doc in ENGINE_DOCS:
        for argv in sim_commands(ROOT / "docs" / doc):
            port = argv[argv.index("--port") + 1]
            by_port.setdefault(port, argv)
    procs = []
    for port, argv in by_port.items():
        cmd = [SAGELLM, "sim", *argv, "--host", "127.0.0.1", "--sim-time-scale", "0.01",
               "--sim-log-level", "warning"]  # fmt: skip
        procs.append((port, subprocess.Popen(cmd, stdout=subprocess.DEVNULL)))
    try:
        for port, proc in procs:
            _wait(f"http://127.0.0.1:{port}/health", proc)
        yield
    finally:
        for _, proc in procs:
            proc.terminate()
        for _, proc in procs:
            proc.wait(10)


@pytest.mark.parametrize(("doc", "block"), _cases(), ids=lambda v: getattr(v, "line", v))
def test_python_block_runs(
    doc: str, block: Block, engines: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if block.skip:
        assert block.skip in ALLOWED_SKIPS, f"{doc}:{block.line}: unknown skip reason"
        pytest.skip(f"{doc}:{block.line} {block.skip}")
    monkeypatch.syspath_prepend(PLUGIN_PKG)
    out = io.StringIO()
    code = compile(block.code, f"docs/{doc}:{block.line}", "exec")
    with contextlib.redirect_stdout(out):
        exec(code, {"__name__": "__main__"})
    assert "Traceback" not in out.getvalue()


def test_every_doc_exists_and_has_a_runnable_block() -> None:
    for doc in DOCS:
        python = [b for b in blocks(ROOT / "docs" / doc) if b.lang == "python"]
        assert any(not b.skip for b in python), f"docs/{doc} has no runnable python block"


def test_every_doc_with_python_blocks_is_run() -> None:
    """A new doc with a python block must be added to DOCS (so it is executed here)."""
    with_python = {p.name for p in (ROOT / "docs").glob("*.md") if "```python" in p.read_text()}
    assert with_python <= set(DOCS), sorted(with_python - set(DOCS))
