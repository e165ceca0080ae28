"""Copy the seed documents' Python code blocks into tests/seeds/blocks/, verbatim.

Usage: python tools/seeds/extract_blocks.py SEEDS_DIR [OUT_DIR]

Each ```` ```python ```` block of ``NNN_*.md`` becomes ``sNNN_KK.py`` (KK counts the document's
blocks from 01). One block of 003 lost its opening fence to the seed's encoding damage (the
code from ``async def main():`` to the closing fence after ``asyncio.run(main())``); it is
recovered as ``s003_recovered.py``. The test (tests/seeds/test_seed_blocks.py) says what each
block must print or raise.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

OPEN = re.compile(r"^\s*(`{3,})\s*python\s*$")


def blocks(lines: list[str]) -> list[tuple[int, list[str]]]:
    """(first line number, body lines) of every python-fenced block."""
    found, i = [], 0
    while i < len(lines):
        opened = OPEN.match(lines[i])
        if opened is None:
            i += 1
            continue
        close = re.compile(rf"^\s*`{{{len(opened.group(1))},}}\s*$")
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            j += 1
        found.append((i + 2, lines[i + 1 : j]))
        i = j + 1
    return found


def recovered(lines: list[str]) -> list[str]:
    """003's unfenced ``process_request`` example (its last ``async def main():`` to the fence)."""
    start = max(i for i, line in enumerate(lines) if line == "async def main():")
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("```"))
    return lines[start:end]


def main(seeds: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for doc in sorted(seeds.glob("[0-9][0-9][0-9]_*.md")):
        lines = doc.read_text(encoding="utf-8").split("\n")
        for n, (line, body) in enumerate(blocks(lines), start=1):
            (out / f"s{doc.name[:3]}_{n:02d}.py").write_text("\n".join(body) + "\n")
            print(f"s{doc.name[:3]}_{n:02d}.py  {doc.name} line {line}")
        if doc.name.startswith("003"):
            (out / "s003_recovered.py").write_text("\n".join(recovered(lines)) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2] if len(sys.argv) > 2 else "tests/seeds/blocks"))
