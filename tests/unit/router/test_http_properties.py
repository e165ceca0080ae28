"""Property tests (Hypothesis) for the two hand-written HTTP/1.1 parsers: the fast path's request
head parser and the chunked-body decoder. Any input either parses to what was encoded, waits
for more bytes, or is refused with the parser's own error — never another exception."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sagellm_router.chunked import ChunkDecoder
from sagellm_router.fastpath.head import MAX_HEAD, Slow, parse_head

PATHS = frozenset({"/v1/completions", "/v1/chat/completions", "/v1/embeddings"})
TOKEN = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1,
                max_size=20)  # fmt: skip
VALUE = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40)
RESERVED = {"content-length", "host", "transfer-encoding", "expect", "upgrade", "connection"}
HEADERS = st.dictionaries(
    TOKEN.filter(lambda n: n.lower() not in RESERVED), VALUE, max_size=8
).filter(lambda h: len({k.lower() for k in h}) == len(h))


def encode_head(path: str, headers: dict[str, str], length: int) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: r", f"Content-Length: {length}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@given(st.sampled_from(sorted(PATHS)), HEADERS, st.integers(0, 10**9), st.binary(max_size=64))
def test_a_plain_head_parses_to_what_was_encoded(
    path: str, headers: dict[str, str], length: int, body: bytes
) -> None:
    raw = encode_head(path, headers, length)
    head = parse_head(raw + body, PATHS)
    assert head is not None
    assert (head.path, head.length, head.size) == (path, length, len(raw))
    expected = {"host": "r", "content-length": str(length)}
    expected |= {k.lower(): v for k, v in headers.items()}
    assert head.headers == expected


@given(st.sampled_from(sorted(PATHS)), HEADERS, st.data())
def test_every_proper_prefix_of_a_head_waits_for_more(
    path: str, headers: dict[str, str], data: st.DataObject
) -> None:
    raw = encode_head(path, headers, 5)
    cut = data.draw(st.integers(0, len(raw) - 1))
    assert parse_head(raw[:cut], PATHS) is None


NOT_FAST = ["Transfer-Encoding: chunked", "Expect: 100-continue", "Upgrade: h2c",
            "Connection: upgrade", "Content-Length: 1", "Content-Length: -1",
            "Content-Length: 1e3", "Bad Header: x", "X: a\x01b"]  # fmt: skip


@given(st.sampled_from(NOT_FAST), st.booleans())
def test_heads_the_fast_path_must_not_serve_are_handed_over(line: str, upper: bool) -> None:
    raw = encode_head("/v1/completions", {}, 1)
    raw = raw[:-2] + (line.upper() if upper else line).encode() + b"\r\n\r\n"
    with pytest.raises(Slow):
        parse_head(raw, PATHS)


@settings(max_examples=300)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_parse_wait_or_hand_over(raw: bytes) -> None:
    for buf in (raw, b"POST /v1/completions HTTP/1.1\r\n" + raw):
        try:
            head = parse_head(buf, PATHS)
        except Slow:
            continue
        if head is not None:
            assert buf[head.size - 4 : head.size] == b"\r\n\r\n"
            assert head.path in PATHS
            assert head.length >= 0
        else:
            assert b"\r\n\r\n" not in buf
            assert len(buf) <= MAX_HEAD


def chunked(chunks: list[bytes], ext: bool, trailers: list[str]) -> bytes:
    out = b"".join(b"%x%s\r\n%s\r\n" % (len(c), b";k=v" if ext else b"", c) for c in chunks if c)
    return out + b"0\r\n" + b"".join(f"{t}\r\n".encode() for t in trailers) + b"\r\n"


@given(
    st.lists(st.binary(min_size=1, max_size=300), max_size=8),
    st.booleans(),
    st.lists(st.sampled_from(["X-A: 1", "Y: two"]), max_size=2),
    st.binary(max_size=16),
    st.data(),
)
def test_any_split_of_a_chunked_body_decodes_to_the_payload(
    chunks: list[bytes], ext: bool, trailers: list[str], after: bytes, data: st.DataObject
) -> None:
    stream = chunked(chunks, ext, trailers) + after
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder, out = ChunkDecoder(), bytearray()
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        for piece in decoder.feed(stream[start:end]):
            out += piece
    assert bytes(out) == b"".join(chunks)
    assert decoder.done
    assert decoder.leftover == after


@given(st.text(st.sampled_from("0123456789abcdefABCDEF+-_x xX\t"), min_size=1, max_size=12))
def test_a_size_line_that_is_not_plain_hex_is_refused(size: str) -> None:
    decoder = ChunkDecoder()
    plain = size.strip(" \t")
    try:
        decoder.feed(size.encode() + b"\r\n")
    except ValueError:
        assert not plain or not all(c in "0123456789abcdefABCDEF" for c in plain)
        return
    assert plain
    assert all(c in "0123456789abcdefABCDEF" for c in plain)


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_arbitrary_bytes_decode_or_raise_value_error(pieces: list[bytes]) -> None:
    decoder = ChunkDecoder()
    try:
        for piece in pieces:
            decoder.feed(piece)
    except ValueError:
        pass
