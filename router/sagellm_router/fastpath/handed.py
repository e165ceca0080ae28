"""A connection the fast path handed to aiohttp, still counted in the edge's open connections."""

from __future__ import annotations

import asyncio

from sagellm_router.edge import Edge


class Handed(asyncio.Protocol):
    """Forwards every transport callback to aiohttp's protocol; releases the connection's slot
    in the edge's budget when it closes."""

    __slots__ = ("_edge", "_inner")

    def __init__(self, inner: asyncio.Protocol, edge: Edge) -> None:
        self._inner = inner
        self._edge = edge

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._edge.close_connection()
        self._inner.connection_lost(exc)
