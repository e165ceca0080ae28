"""The router's fast path: plain inference requests served without aiohttp's server stack."""

from sagellm_router.fastpath.protocol import FastProtocol, Listener, RawDownstream

__all__ = ["FastProtocol", "Listener", "RawDownstream"]
