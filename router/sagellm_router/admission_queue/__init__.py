"""Per-pool admission queue: decides WHEN a request may proceed (the routing strategy decides
WHICH instance). See ``queue.AdmissionQueue`` and docs/scheduling.md.

(Named ``admission_queue`` because ``sagellm_router/admission.py`` — the router's admission
seam — already owns the name ``admission``.)
"""

from sagellm_router.admission_queue.config import QueueConfig
from sagellm_router.admission_queue.errors import Rejected, metadata_from_request
from sagellm_router.admission_queue.queue import AdmissionQueue
from sagellm_router.admission_queue.sources import instance_views
from sagellm_router.admission_queue.ticket import Ticket

__all__ = [
    "AdmissionQueue",
    "QueueConfig",
    "Rejected",
    "Ticket",
    "instance_views",
    "metadata_from_request",
]
