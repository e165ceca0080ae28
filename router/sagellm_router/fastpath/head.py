"""HTTP/1.1 message heads for the router's fast path (pure: bytes in, values out).

``parse_head`` accepts only the plain case the fast path serves — ``POST`` of an inference
route over HTTP/1.1 with a ``Content-Length`` body, ASCII headers and nothing that changes the
message framing or the connection (``Transfer-Encoding``, ``Expect``, ``Upgrade``, a
``Connection`` other than ``keep-alive`` or ``close``). Anything else raises ``Slow``: the
connection is handed to aiohttp, which serves every route and answers malformed requests with
its own 4xx.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Set
from http import HTTPStatus
from typing import NamedTuple

#: A head longer than this without its blank line goes to aiohttp (which answers 431/400).
MAX_HEAD = 16 * 1024
_FRAMING = frozenset({"transfer-encoding", "expect", "upgrade"})
_ONCE = frozenset({"content-length", "host"})
_HEAD_BYTES = bytes(range(0x20, 0x7F)) + b"\t\r\n"  # visible ASCII, space, tab, CR, LF
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_PHRASES = {s.value: s.phrase for s in HTTPStatus}


class Slow(Exception):
    """The request is not one the fast path serves; aiohttp takes the connection."""


class Head(NamedTuple):
    """A fast-path request head: route, lower-cased headers, body length, head size, and
    whether the client asked to close the connection after the answer."""

    path: str
    headers: dict[str, str]
    length: int
    size: int
    close: bool = False


def parse_head(buf: bytes | bytearray, paths: Set[str]) -> Head | None:
    """The head at the start of ``buf``; ``None`` while incomplete; ``Slow`` if not fast."""
    end = buf.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
    if end < 0:
        if len(buf) > MAX_HEAD:
            raise Slow("head too long")
        return None
    raw = bytes(buf[:end])
    lines = raw.decode("latin-1").split("\r\n")
    crlf = len(lines) - 1
    if raw.translate(None, _HEAD_BYTES) or raw.count(b"\r") != crlf or raw.count(b"\n") != crlf:
        raise Slow("control or non-ASCII bytes, or a bare CR or LF, in the head")
    request = lines[0].split(" ")
    if len(request) != 3 or request[0] != "POST" or request[2] != "HTTP/1.1":
        raise Slow("not a POST over HTTP/1.1")
    if request[1] not in paths:
        raise Slow("not an inference route")
    headers = _headers(lines)
    close = _closes(headers.get("connection"))
    return Head(request[1], headers, _content_length(headers), end + 4, close)


def _headers(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not (name.replace("-", "").isalnum() or _TOKEN.fullmatch(name)):
            raise Slow("malformed header line")
        key = name.lower()
        if key in _ONCE and key in headers:
            raise Slow(f"repeated {key}")
        headers[key] = value.strip(" \t")
    if not _FRAMING.isdisjoint(headers):
        raise Slow("Transfer-Encoding, Expect or Upgrade needs the full HTTP stack")
    return headers


def _closes(connection: str | None) -> bool:
    if connection is None:
        return False
    value = connection.lower()
    if value == "close":
        return True
    if value != "keep-alive":
        raise Slow("connection header other than keep-alive or close")
    return False


def _content_length(headers: Mapping[str, str]) -> int:
    value = headers.get("content-length")
    if value is None or not value.isdigit() or len(value) > 12:
        raise Slow("no plain Content-Length")
    return int(value)


def response_head(
    status: int, headers: Mapping[str, str], length: int | None, *, close: bool, date: str
) -> bytes:
    """Status line and headers; ``length`` ``None`` means a chunked body follows."""
    lines = [f"HTTP/1.1 {status} {_PHRASES.get(status, 'Unknown')}", f"Date: {date}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append("Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    """``data`` framed as one chunk of a chunked body (empty data would end the body)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
