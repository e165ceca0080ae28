"""Scheduling: request metadata, pluggable admission policies, fair share and rate limits.

Pure code (no asyncio, no I/O): the router's admission queue calls into it with an injected
clock. ``default_policies()`` builds the policy set; ``select_next`` picks the next request.
"""

from sagellm_core.scheduling.base import (
    BasePolicy,
    Placement,
    SchedulingPolicy,
    Shed,
    ranked,
    select_next,
)
from sagellm_core.scheduling.fairshare import FairShare
from sagellm_core.scheduling.metadata import MetadataError, RequestMetadata, parse_metadata
from sagellm_core.scheduling.predictor import TtftPredictor
from sagellm_core.scheduling.ratelimit import RateDecision, UserRateLimiter
from sagellm_core.scheduling.registry import PolicySettings, default_policies
from sagellm_core.scheduling.slo import SloWindow, slo_met
from sagellm_core.scheduling.view import ClusterView, InstanceView, QueueItem, Signals

__all__ = [
    "BasePolicy",
    "ClusterView",
    "FairShare",
    "InstanceView",
    "MetadataError",
    "Placement",
    "PolicySettings",
    "QueueItem",
    "RateDecision",
    "RequestMetadata",
    "SchedulingPolicy",
    "Shed",
    "Signals",
    "SloWindow",
    "TtftPredictor",
    "UserRateLimiter",
    "default_policies",
    "parse_metadata",
    "ranked",
    "select_next",
    "slo_met",
]
