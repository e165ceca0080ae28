"""The upstream used when in-process engines exist: ``inprocess://ID`` goes to the adapter
registered under that URL, every other URL over HTTP (``UpstreamPool``)."""

from __future__ import annotations

from collections.abc import Mapping

from sagellm_router.inprocess.adapter import LocalEngine
from sagellm_router.upstream import UpstreamError, UpstreamPool, UpstreamResponse

INPROCESS_SCHEME = "inprocess://"


class MixedUpstream:
    def __init__(self, http: UpstreamPool, local: Mapping[str, LocalEngine]) -> None:
        self.http, self.local = http, local

    async def post(
        self, base: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> UpstreamResponse:
        if not base.startswith(INPROCESS_SCHEME):
            return await self.http.post(base, path, body, headers)
        engine = self.local.get(base)
        if engine is None:
            raise UpstreamError("connect_error", f"no in-process engine at {base}")
        return await engine.post(path, body, headers)

    async def close(self) -> None:
        await self.http.close()
