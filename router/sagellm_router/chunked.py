"""An incremental decoder for HTTP/1.1 ``Transfer-Encoding: chunked`` bodies (pure, no I/O).

Feed it whatever the socket returned; ``feed`` returns the payload pieces that became available
(one per chunk, or part of a chunk that is still arriving), so the caller can relay chunks that
arrived together in one downstream write. ``done`` turns true after the last chunk and its
trailers; ``leftover`` holds bytes received after the end of the body (which a well-behaved
server never sends).
"""

from __future__ import annotations

import re

_HEX = re.compile(rb"[0-9a-fA-F]{1,16}")
_SIZE, _DATA, _CRLF, _TRAILER, _DONE = range(5)
MAX_LINE = 1 << 20


class ChunkDecoder:
    """De-chunks a body fed piece by piece; raises ``ValueError`` on a malformed size line
    (anything but 1-16 hex digits, optionally followed by ``;extensions``)."""

    __slots__ = ("_buf", "_remaining", "_state")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._state = _SIZE
        self._remaining = 0

    @property
    def done(self) -> bool:
        return self._state == _DONE

    @property
    def leftover(self) -> bytes:
        return bytes(self._buf) if self._state == _DONE else b""

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the payload pieces now available (possibly none)."""
        if self._state == _DONE:
            self._buf += data
            return []
        buf = self._buf
        buf += data
        out: list[bytes] = []
        pos = 0
        while True:
            state = self._state
            if state == _DATA:
                take = min(self._remaining, len(buf) - pos)
                if take == 0:
                    break
                out.append(bytes(buf[pos : pos + take]))
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = _CRLF
            elif state == _CRLF:
                if len(buf) - pos < 2:
                    break
                pos += 2  # the CRLF closing a chunk's data
                self._state = _SIZE
            elif state == _DONE:
                break
            else:
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    if len(buf) - pos > MAX_LINE:
                        raise ValueError("chunk size or trailer line too long")
                    break
                line, pos = bytes(buf[pos:end]), end + 2
                self._line(line)
        del buf[:pos]
        return out

    def _line(self, line: bytes) -> None:
        if self._state == _TRAILER:
            if not line:
                self._state = _DONE
            return
        digits = line.split(b";", 1)[0].strip(b" \t")
        if not _HEX.fullmatch(digits):  # int() would also take "+5", "0x5", "5_0", "-0"
            raise ValueError(f"chunk size {digits[:20]!r} is not a hexadecimal number")
        size = int(digits, 16)
        self._state, self._remaining = (_DATA, size) if size else (_TRAILER, 0)
