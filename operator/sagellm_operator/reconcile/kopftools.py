"""kopf's own tools: owner references (``kopf.append_owner_reference``) and Kubernetes Events
(``kopf.event``).

Owner references: the builders stay pure (no framework import); the reconcile adds the owner
before it creates an object, so Kubernetes deletes the object with its owner.

Events: kopf builds the Event (``involvedObject``, ``eventTime``, ``reportingComponent`` and
``reportingInstance``, the ``kubectl describe`` fields), posts it with its own API client from its
posting queue, retries with backoff, and logs (never raises) a failure.

``kopf.event`` finds that queue in a context variable kopf sets for its per-object handler
tasks. The operator-wide loops (resync, autoscaler) are started at startup, outside any object
handler, so :meth:`Events.bind` keeps the context of the first handler call and events raised
from those loops are posted in it: one queue, one client, whichever task posts.
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any, cast

import kopf

log = logging.getLogger(__name__)
Obj = dict[str, Any]


def _body(obj: Obj) -> kopf.Body:
    return kopf.Body(cast(kopf.RawBody, obj))


def owned(child: Obj, owner: Obj) -> Obj:
    """``child`` with ``owner`` as its controlling owner (kopf's reference: controller and
    blockOwnerDeletion set)."""
    kopf.append_owner_reference(child, owner=_body(owner))
    return child


class Events:
    def __init__(self) -> None:
        self._context: contextvars.Context | None = None

    def bind(self) -> None:
        """Keep the calling handler's context (kopf's event queue); the first call wins."""
        if self._context is None:
            self._context = contextvars.copy_context()

    def post(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        """Post an Event about ``obj`` (``type_``: Normal or Warning)."""
        body = _body(obj)
        try:
            kopf.event(body, type=type_, reason=reason, message=message)
        except LookupError:  # not in a handler's task: use the bound context
            if self._context is None:
                log.warning("event not posted: no handler ran yet", extra={"reason": reason})
                return
            self._context.copy().run(kopf.event, body, type=type_, reason=reason, message=message)
