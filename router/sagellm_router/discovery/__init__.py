"""Endpoint discovery sources behind one interface (``Discovery``)."""

from sagellm_router.discovery.base import Discovery, PoolTable

__all__ = ["Discovery", "PoolTable"]
