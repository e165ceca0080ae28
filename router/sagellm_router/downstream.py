"""Where a proxied answer goes: an HTTP client (the router app) or a collector (the embedded
``ControlPlaneManager``). The forwarding core writes to a ``Downstream`` and never knows which.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from aiohttp import web


class Downstream(Protocol):
    """Receives one answer: either ``whole`` once, or ``start``, ``write``..., ``end``."""

    async def whole(self, status: int, headers: Mapping[str, str], body: bytes) -> None: ...

    async def start(self, status: int, headers: Mapping[str, str]) -> None: ...

    async def write(self, chunk: bytes) -> None: ...

    async def end(self) -> None: ...


class HttpDownstream:
    """Writes to the aiohttp request's client; ``response`` is what the handler returns."""

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self.response: web.StreamResponse | None = None

    async def whole(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.response = web.Response(status=status, body=body, headers=dict(headers))

    async def start(self, status: int, headers: Mapping[str, str]) -> None:
        response = web.StreamResponse(status=status, headers=dict(headers))
        response.headers["Cache-Control"] = "no-cache"
        await response.prepare(self._request)
        self.response = response

    async def write(self, chunk: bytes) -> None:
        assert self.response is not None
        await self.response.write(chunk)  # raises if the client left; upstream is then closed

    async def end(self) -> None:
        assert self.response is not None
        await self.response.write_eof()


class Collector:
    """Keeps the answer in memory (status, headers, body); ``on_first`` fires on the first byte."""

    def __init__(self, on_first: Callable[[], None] = lambda: None) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.streamed = False
        self._on_first = on_first

    async def whole(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status, self.headers = status, dict(headers)
        self.body += body
        self._on_first()

    async def start(self, status: int, headers: Mapping[str, str]) -> None:
        self.status, self.headers, self.streamed = status, dict(headers), True

    async def write(self, chunk: bytes) -> None:
        if not self.body:
            self._on_first()
        self.body += chunk

    async def end(self) -> None:
        return None
