"""The incremental chunked-body decoder: table-driven framing cases and every split point."""

from __future__ import annotations

import pytest

from sagellm_router.chunked import MAX_LINE, ChunkDecoder
from sagellm_router.sse import UsageScanner

BODY = b"6;ext=1\r\ndata: \r\n3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n"


@pytest.mark.parametrize(
    ("feeds", "pieces", "done", "leftover"),
    [
        ([BODY], [b"data: ", b"abc"], True, b""),
        ([b"3\r\nab", b"c\r\n0\r\n\r\n"], [b"ab", b"c"], True, b""),
        ([b"A\r\n0123456789\r\n"], [b"0123456789"], False, b""),
        ([b"0\r\n\r\nHTTP/1.1"], [], True, b"HTTP/1.1"),
        ([b"0\r\n", b"T: 1\r\n"], [], False, b""),
        ([b"1\r\nx\r\n0\r\n\r\n", b"junk"], [b"x"], True, b"junk"),
    ],
)
def test_framing(feeds: list[bytes], pieces: list[bytes], done: bool, leftover: bytes) -> None:
    decoder = ChunkDecoder()
    got = [piece for data in feeds for piece in decoder.feed(data)]
    assert got == pieces
    assert decoder.done is done
    assert decoder.leftover == leftover


def test_every_split_point_yields_the_same_payload() -> None:
    for cut in range(len(BODY) + 1):
        decoder = ChunkDecoder()
        payload = b"".join(decoder.feed(BODY[:cut]) + decoder.feed(BODY[cut:]))
        assert payload == b"data: abc"
        assert decoder.done


@pytest.mark.parametrize("bad", [b"zz\r\n", b"-5\r\n", b"1" * (MAX_LINE + 1)])
def test_malformed_size_line_is_a_value_error(bad: bytes) -> None:
    with pytest.raises(ValueError, match=r"chunk|invalid literal"):
        ChunkDecoder().feed(bad)


def test_usage_scanner_skips_whole_lines_without_usage_but_keeps_split_events() -> None:
    scanner = UsageScanner()
    scanner.feed(b'data: {"choices":[{"text":"a"}]}\n\n')
    assert scanner.usage is None
    scanner.feed(b'data: {"usage":{"completion_')
    scanner.feed(b'tokens":2}}\n\n')
    assert scanner.usage == {"completion_tokens": 2}
