"""Where the client's requests go: a router (or any OpenAI server) over HTTP, or an embedded
``ControlPlaneManager`` (the same pipeline, in memory). Both return an ``Answer``: status,
lower-cased headers and either the body or an async iterator of SSE data payloads."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import orjson

from sagellm_router.errors import ApiError

if TYPE_CHECKING:
    from control_plane.manager import ControlPlaneManager


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    events: AsyncIterator[bytes] | None = None  # SSE ``data:`` payloads, ``[DONE]`` excluded


class Backend(Protocol):
    async def send(self, path: str, body: Mapping[str, Any], stream: bool) -> Answer: ...

    async def models(self) -> list[str]: ...

    async def close(self) -> None: ...


class ConnectFailed(Exception):
    """No answer came (connection refused, reset, timeout): safe to retry."""


async def sse_payloads(lines: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``data:`` payloads of an SSE byte stream, up to ``[DONE]``."""
    buffer = b""
    async for piece in lines:
        buffer += piece
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            for line in event.split(b"\n"):
                if line.startswith(b"data:"):
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        return
                    yield data


class HttpBackend:
    def __init__(self, base_url: str, api_key: str | None, timeout: float) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None  # made on the loop that uses it

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self._session

    async def models(self) -> list[str]:
        """The ids ``GET /v1/models`` lists."""
        try:
            async with self.session.get(self.base_url + "/v1/models") as resp:
                data = await resp.json(content_type=None) if resp.status == 200 else {}
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise ConnectFailed(f"{self.base_url}: {exc or type(exc).__name__}") from exc
        return sorted(str(m.get("id")) for m in (data or {}).get("data") or [])

    async def send(self, path: str, body: Mapping[str, Any], stream: bool) -> Answer:
        try:
            resp = await self.session.post(
                self.base_url + path, data=orjson.dumps(body),
                headers={"Content-Type": "application/json"},
            )  # fmt: skip
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise ConnectFailed(f"{self.base_url}: {exc or type(exc).__name__}") from exc
        headers = {k.lower(): v for k, v in resp.headers.items()}
        if not stream or resp.status != 200:
            try:
                return Answer(resp.status, headers, await resp.read())
            finally:
                resp.release()
        return Answer(resp.status, headers, events=self._events(resp))

    async def _events(self, resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        try:
            async for data in sse_payloads(resp.content.iter_any()):
                yield data
        finally:
            resp.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class _QueueDown:
    """A ``Downstream`` that hands the answer to the consumer piece by piece."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    async def whole(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        await self.queue.put(("whole", (status, dict(headers), body)))

    async def start(self, status: int, headers: Mapping[str, str]) -> None:
        await self.queue.put(("start", (status, dict(headers))))

    async def write(self, chunk: bytes) -> None:
        await self.queue.put(("chunk", chunk))

    async def end(self) -> None:
        await self.queue.put(("end", None))


class ManagerBackend:
    def __init__(self, manager: ControlPlaneManager) -> None:
        self.manager = manager

    async def models(self) -> list[str]:
        return sorted({i.model_name for i in self.manager.get_instances() if i.model_name})

    async def send(self, path: str, body: Mapping[str, Any], stream: bool) -> Answer:
        down = _QueueDown()
        task = asyncio.ensure_future(self.manager.execute(path, body, down))
        task.add_done_callback(lambda t: _finish(t, down))
        kind, value = await down.queue.get()
        if kind == "error":
            return _error_answer(value)
        if kind == "whole":
            status, headers, payload = value
            return Answer(status, {k.lower(): v for k, v in headers.items()}, payload)
        status, headers = value
        return Answer(status, {k.lower(): v for k, v in headers.items()},
                      events=self._events(down, task))  # fmt: skip

    async def _events(self, down: _QueueDown, task: asyncio.Future[Any]) -> AsyncIterator[bytes]:
        async def pieces() -> AsyncIterator[bytes]:
            while True:
                kind, value = await down.queue.get()
                if kind != "chunk":
                    return
                yield value

        try:
            async for data in sse_payloads(pieces()):
                yield data
        finally:
            if not task.done():  # the consumer stopped early: cancel upstream (abort)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, ApiError):
                    await task

    async def close(self) -> None:
        return None


def _finish(task: asyncio.Future[Any], down: _QueueDown) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        down.queue.put_nowait(("error", exc))
    else:
        down.queue.put_nowait(("end", None))


def _error_answer(exc: BaseException) -> Answer:
    if not isinstance(exc, ApiError):
        raise exc
    headers = {"content-type": "application/json"}
    if exc.retry_after is not None:
        headers["retry-after"] = str(exc.retry_after)
    return Answer(exc.status, headers, orjson.dumps(exc.payload()))
