"""Run seed code blocks verbatim, the way a reader pastes them into ``python -m asyncio``.

A document is one *session*: its blocks run in order in one namespace (``__name__`` is
``"__main__"``, so ``if __name__ == "__main__": asyncio.run(main())`` runs), top-level
``await`` is allowed, and a block that starts indented continues the previous one (the seeds
split one ``async def main()`` over several headings). Only these substitutions are made:

- imports of packages that are not ours: ``vllm.control_plane`` / ``sage.llm`` /
  ``sage.llm.control_plane`` -> ``control_plane``; ``vllm.sampling_params`` -> ``control_plane``
  (the one-line change docs/seed-names.md gives users);
- the seeds' engine ports 8000/8001/8002 (and ``localhost``) -> running simulator engines.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

BLOCKS = Path(__file__).parent / "blocks"

IMPORTS = (
    (re.compile(r"\bfrom vllm\.control_plane(\.types)? import"), r"from control_plane\1 import"),
    (
        re.compile(r"\bfrom sage\.llm\.control_plane(\.strategies|\.types)? import"),
        r"from control_plane\1 import",
    ),
    (re.compile(r"\bfrom sage\.llm import"), "from control_plane import"),
    (re.compile(r"\bfrom vllm\.sampling_params import"), "from control_plane import"),
)


def substitute(source: str, ports: Mapping[int, int]) -> str:
    for pattern, replacement in IMPORTS:
        source = pattern.sub(replacement, source)
    for seed_port, port in ports.items():
        source = re.sub(rf"\bport={seed_port}\b", f"port={port}", source)
    return source.replace('host="localhost"', 'host="127.0.0.1"')


@dataclass
class Outcome:
    block: str
    stdout: str
    error: BaseException | None = None


@dataclass
class Session:
    """One document's namespace and event loop."""

    ports: Mapping[int, int]
    namespace: dict[str, object] = field(default_factory=lambda: {"__name__": "__main__"})

    def __post_init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, name: str, source: str) -> Outcome:
        out = io.StringIO()
        outcome = Outcome(name, "")
        try:
            code = compile(
                substitute(source, self.ports), name, "exec",
                flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
            )  # fmt: skip
            with contextlib.redirect_stdout(out):
                result = eval(code, self.namespace)  # the seed's code, as a REPL runs it
                if inspect.iscoroutine(result):
                    self.loop.run_until_complete(result)
        except Exception as exc:  # the outcome records it; the test says what it must be
            outcome.error = exc
        outcome.stdout = out.getvalue()
        return outcome

    def close(self) -> None:
        pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()


def programs(doc: str) -> list[tuple[str, str]]:
    """(name, source) of a document's blocks in order; an indented block joins the previous
    one, and 003's recovered block follows block 06 (where it stands in the document)."""
    files = sorted(BLOCKS.glob(f"s{doc}_[0-9][0-9].py"))
    if doc == "003":
        at = next(i for i, f in enumerate(files) if f.name == "s003_06.py") + 1
        files.insert(at, BLOCKS / "s003_recovered.py")
    out: list[tuple[str, str]] = []
    for f in files:
        text = f.read_text(encoding="utf-8")
        if out and text[:1] in (" ", "\t"):
            name, previous = out.pop()
            out.append((f"{name}+{f.stem}", previous + text))
        else:
            out.append((f.stem, text))
    return out
