"""A small, strict reader of the project's Dockerfile: stages and their instructions.

Only what the tests need: line continuations, comments, ``FROM ... AS name``, and the JSON
(exec) form of RUN / ENTRYPOINT / CMD with leading ``--flags`` (e.g. ``--mount=...``).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Instruction:
    op: str
    flags: tuple[str, ...]
    rest: str

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form RUN/ENTRYPOINT/CMD; ValueError for shell form."""
        try:
            value = json.loads(self.rest)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{self.op} {self.rest!r} is not in exec (JSON) form") from exc
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{self.op} {self.rest!r} is not a JSON list of strings")
        return value

    def flag(self, name: str) -> dict[str, str]:
        """``--mount=type=bind,source=/x`` -> {"type": "bind", "source": "/x"} for name "mount"."""
        for f in self.flags:
            if f.startswith(f"--{name}="):
                pairs = f.split("=", 1)[1].split(",")
                return dict(p.split("=", 1) for p in pairs)
        return {}


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def ops(self, op: str) -> list[Instruction]:
        return [i for i in self.instructions if i.op == op]


def logical_lines(text: str) -> list[str]:
    """Join backslash continuations, drop comments and blank lines."""
    out: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        out.append((pending + line).strip())
        pending = ""
    if pending:
        out.append(pending.strip())
    return out


def _instruction(line: str) -> Instruction:
    op, _, rest = line.partition(" ")
    rest = rest.strip()
    flags: list[str] = []
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        flags.append(flag)
        rest = rest.strip()
    return Instruction(op.upper(), tuple(flags), rest)


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with ``${ARG}`` in FROM resolved."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical_lines(text):
        ins = _instruction(line)
        if ins.op == "ARG" and not stages:
            name, _, default = ins.rest.partition("=")
            args[name] = default
        elif ins.op == "FROM":
            words = shlex.split(ins.rest)
            base = words[0]
            for name, value in args.items():
                base = base.replace(f"${{{name}}}", value)
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, alias))
        elif stages:
            stages[-1].instructions.append(ins)
        else:
            raise ValueError(f"instruction before the first FROM: {line!r}")
    return args, stages
