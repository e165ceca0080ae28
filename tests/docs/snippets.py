"""Extract the code blocks of a Markdown doc: ```python blocks (with their skip marker, if any)
and the ``sagellm sim`` command lines of ```bash blocks (the engines the doc asks to start)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^```(\w*)\s*$")
SKIP = re.compile(r"<!--\s*snippet:\s*skip\s*\((?P<why>[^)]*)\)\s*-->")
ALLOWED_SKIPS = ("needs a cluster", "needs a GPU", "needs vLLM installed and a model")
ASSIGN = re.compile(r"^(?P<name>[A-Z_][A-Z0-9_]*)='(?P<value>[^']*)'$")


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int
    skip: str | None


def blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match is None or not match.group(1):
            i += 1
            continue
        start, body = i + 1, []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        previous = next((x for x in reversed(lines[: start - 1]) if x.strip()), "")
        marker = SKIP.search(previous)
        found.append(Block(match.group(1), "\n".join(body) + "\n", start, marker and marker["why"]))
        i += 1
    return found


def sim_commands(path: Path) -> list[list[str]]:
    """argv lists of every ``sagellm sim ...`` line in the doc's bash blocks."""
    commands = []
    for block in blocks(path):
        if block.lang != "bash" or block.skip:
            continue
        env: dict[str, str] = {}
        for raw in block.code.splitlines():
            line = raw.strip().removesuffix("&").strip()
            assign = ASSIGN.match(line)
            if assign:
                env[assign["name"]] = assign["value"]
            elif line.startswith("sagellm sim "):
                for name, value in env.items():
                    line = line.replace(f'"${name}"', shlex.quote(value))
                commands.append(shlex.split(line)[2:])
    return commands
