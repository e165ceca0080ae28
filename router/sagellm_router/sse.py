"""Small helpers for Server-Sent Events passthrough."""

from __future__ import annotations

from typing import Any

import orjson

_MAX_TAIL = 1 << 20


class UsageScanner:
    """Finds the last ``usage`` object in an SSE byte stream fed chunk by chunk.

    Events may be split across chunks, so an incomplete trailing line is kept. Only lines that
    mention ``completion_tokens`` are JSON-decoded, which keeps the per-chunk cost low.
    """

    def __init__(self) -> None:
        self._tail = b""
        self.usage: dict[str, Any] | None = None

    def feed(self, chunk: bytes) -> None:
        if not self._tail and chunk.endswith(b"\n") and b'"completion_tokens"' not in chunk:
            return  # only whole lines, none with usage: nothing to parse or keep
        data = self._tail + chunk if self._tail else chunk
        lines = data.split(b"\n")
        tail = lines.pop()
        self._tail = tail if len(tail) <= _MAX_TAIL else b""
        for line in lines:
            if line.startswith(b"data: {") and b'"completion_tokens"' in line:
                self._parse(line[6:])

    def _parse(self, payload: bytes) -> None:
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        usage = event.get("usage") if isinstance(event, dict) else None
        if isinstance(usage, dict):
            self.usage = usage


def usage_of(body: bytes) -> dict[str, Any] | None:
    """The ``usage`` object of a JSON response body, if any."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    usage = obj.get("usage") if isinstance(obj, dict) else None
    return usage if isinstance(usage, dict) else None
