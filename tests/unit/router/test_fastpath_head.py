"""The fast path's request-head parser: which requests it serves, which go to aiohttp."""

from __future__ import annotations

import pytest

from sagellm_router.fastpath.head import (
    LAST_CHUNK,
    MAX_HEAD,
    Head,
    Slow,
    chunk,
    parse_head,
    response_head,
)

PATHS = frozenset({"/v1/completions", "/v1/chat/completions"})
PLAIN = b"POST /v1/completions HTTP/1.1\r\nHost: r\r\nContent-Length: 12\r\n"


def test_plain_request_parses_to_path_lowercased_headers_length_and_size() -> None:
    raw = PLAIN + b"X-Session-Id:  abc \r\nAuthorization: Bearer k\r\n\r\n" + b'{"model":"m"}'
    head = parse_head(raw, PATHS)
    assert head == Head(
        path="/v1/completions",
        headers={
            "host": "r",
            "content-length": "12",
            "x-session-id": "abc",
            "authorization": "Bearer k",
        },
        length=12,
        size=raw.index(b"{"),
    )


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"POST /v1/completions HTTP/1.1\r\n",
        PLAIN,  # the blank line has not arrived yet
        PLAIN + b"\r",
    ],
)
def test_incomplete_head_waits_for_more_bytes(raw: bytes) -> None:
    assert parse_head(raw, PATHS) is None


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"GET /v1/models HTTP/1.1\r\nHost: r\r\n\r\n", "other method"),
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "other route"),
        (b"POST /v1/completions?x=1 HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "query string"),
        (b"POST /v1/completions HTTP/1.0\r\nContent-Length: 0\r\n\r\n", "HTTP/1.0"),
        (b"POST /v1/completions HTTP/1.1\r\nHost: r\r\n\r\n", "no Content-Length"),
        (PLAIN + b"Transfer-Encoding: chunked\r\n\r\n", "chunked body"),
        (PLAIN + b"Expect: 100-continue\r\n\r\n", "Expect"),
        (PLAIN + b"Upgrade: websocket\r\n\r\n", "Upgrade"),
        (PLAIN + b"Connection: upgrade\r\n\r\n", "Connection other than keep-alive or close"),
        (PLAIN + b"Content-Length: 12\r\n\r\n", "duplicate Content-Length"),
        (b"POST /v1/completions HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "negative length"),
        (b"POST /v1/completions HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n", "non-digit length"),
        (PLAIN + b"X-Name: caf\xc3\xa9\r\n\r\n", "non-ASCII header"),
        (PLAIN + b"X-A: 1\x00\r\n\r\n", "NUL byte"),
        (PLAIN + b"X-A: 1\nX-B: 2\r\n\r\n", "bare LF"),
        (PLAIN + b" folded\r\n\r\n", "obsolete line folding"),
        (PLAIN + b"Bad Name: 1\r\n\r\n", "space in a header name"),
        (PLAIN + b"NoColon\r\n\r\n", "header without a colon"),
        (PLAIN + b"X-Pad: " + b"a" * MAX_HEAD, "head too long"),
    ],
)
def test_anything_but_the_plain_case_goes_to_aiohttp(raw: bytes, why: str) -> None:
    with pytest.raises(Slow):
        parse_head(raw, PATHS)


def test_keep_alive_connection_header_stays_on_the_fast_path() -> None:
    head = parse_head(PLAIN + b"Connection: Keep-Alive\r\n\r\n", PATHS)
    assert head is not None
    assert head.length == 12


@pytest.mark.parametrize(
    ("status", "length", "close", "expected_tail"),
    [
        (200, 5, False, b"X-A: 1\r\nContent-Length: 5\r\n\r\n"),
        (429, 0, True, b"X-A: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
        (200, None, False, b"X-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ],
)
def test_response_head(status: int, length: int | None, close: bool, expected_tail: bytes) -> None:
    raw = response_head(status, {"X-A": "1"}, length, close=close, date="D")
    first, rest = raw.split(b"\r\n", 1)
    assert first == {200: b"HTTP/1.1 200 OK", 429: b"HTTP/1.1 429 Too Many Requests"}[status]
    assert rest == b"Date: D\r\n" + expected_tail


def test_chunk_framing() -> None:
    assert chunk(b"data: x\n\n") == b"9\r\ndata: x\n\n\r\n"
    assert chunk(b"a" * 255).startswith(b"ff\r\n")
    assert LAST_CHUNK == b"0\r\n\r\n"


@pytest.mark.parametrize(
    ("value", "close"), [("close", True), ("Close", True), ("keep-alive", False)]
)
def test_connection_close_is_served_and_noted(value: str, close: bool) -> None:
    head = parse_head(PLAIN + f"Connection: {value}\r\n\r\n".encode(), PATHS)
    assert head is not None
    assert head.close is close
