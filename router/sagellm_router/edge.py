"""What both HTTP front ends (the fast path and aiohttp) share at the edge: the API-key and size
checks made from a request's head before any body byte is read, the error answer, and the
router-wide budgets of open connections and buffered request bytes.

Pure bookkeeping, no I/O: the front ends call it and write what it returns.
"""

from __future__ import annotations

from collections.abc import Mapping

from sagellm_router.auth import KeyChecker
from sagellm_router.config import EdgeSettings
from sagellm_router.errors import ApiError

#: Route prefixes behind the API key.
_KEYED = ("/v1/", "/admin/")


class Edge:
    """Auth, size limit and budgets for every client connection of the main listener.

    ``connections`` and ``buffered`` are the current totals over both front ends; a front end
    calls ``open_connection``/``close_connection`` and ``reserve``/``release`` and sheds the
    connection (503, then close) when they refuse.
    """

    def __init__(
        self, settings: EdgeSettings, keys: KeyChecker, max_body: int, *, admin_keyed: bool
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.max_body = max_body
        self._admin_keyed = admin_keyed
        self.connections = 0
        self.buffered = 0
        #: The router stopped accepting connections: every answer says ``Connection: close``.
        self.draining = False

    # -- budgets ----------------------------------------------------------------------------
    def open_connection(self) -> bool:
        """Count a new connection; ``False`` (and not counted) beyond ``max_connections``."""
        if self.connections >= self.settings.max_connections:
            return False
        self.connections += 1
        return True

    def close_connection(self) -> None:
        self.connections -= 1

    def reserve(self, nbytes: int, *, force: bool = False) -> bool:
        """Hold ``nbytes`` more of unprocessed request bytes; ``False`` (and not held) beyond
        the budget unless ``force`` (bytes already read that cannot be refused)."""
        if not force and self.buffered + nbytes > self.settings.max_buffered_bytes:
            return False
        self.buffered += nbytes
        return True

    def release(self, nbytes: int) -> None:
        self.buffered -= nbytes

    # -- checks -----------------------------------------------------------------------------
    def check_head(
        self, path: str, headers: Mapping[str, str], length: int | None
    ) -> ApiError | None:
        """The error to answer from the head alone (``headers`` lower-cased), or ``None``.

        Inference and admin routes need a valid API key when keys are configured; admin routes
        on the main listener need one even when none is configured (so an open admin port is
        never the default). A declared body over ``max_body`` is refused before it is read.
        """
        if path.startswith(_KEYED):
            try:
                if path.startswith("/admin/") and self._admin_keyed and not self.keys.enabled:
                    raise ApiError(
                        401,
                        "admin routes on this port need an API key and none is configured; "
                        "configure auth keys or use the admin listener (admin.port)",
                    )
                self.keys.check(headers.get("authorization"))
            except ApiError as err:
                return err
        if length is not None and length > self.max_body:
            return too_large(length, self.max_body)
        return None


def too_large(length: int | None, limit: int) -> ApiError:
    """413 for a declared ``length``, or (``None``) for a body that passed ``limit`` arriving."""
    if length is None:
        return ApiError(413, f"request body exceeds the limit of {limit} bytes")
    return ApiError(413, f"request body is {length} bytes; the limit is {limit}")


def over_budget(what: str) -> ApiError:
    return ApiError(503, f"router is at its limit of {what}; retry shortly", retry_after=1)


def timed_out(part: str, limit_s: float) -> ApiError:
    return ApiError(408, f"request {part} not received within {limit_s:g}s")


def render(err: ApiError, *, close: bool = False) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of the answer to ``err`` on either front end."""
    headers = err.headers()
    if close:
        headers["Connection"] = "close"
    return err.status, headers, err.body()
