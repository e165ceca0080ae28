"""``spec.autoscaling`` and the status the autoscaler writes (``status.autoscaling``, the
``status.scale`` read by the ``/scale`` subresource)."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from sagellm_core.api.common import ApiModel, Role


class ScaleBounds(ApiModel):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "self.minReplicas <= self.maxReplicas",
         "message": "minReplicas must not exceed maxReplicas"},
    ]})  # fmt: skip

    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(ge=1, le=1000)


class AutoscalingSpec(ApiModel):
    """Built-in scaling from the routers' demand, per role with bounds; off unless ``enabled``.

    While enabled, the operator owns ``spec.roles.<role>.replicas`` of every role given bounds
    here: it writes the count it decides, and any other write (``kubectl scale``, HPA) is
    replaced at its next decision. Roles without bounds keep the replicas the user sets.
    """

    enabled: bool = False
    general: ScaleBounds | None = None
    prefill: ScaleBounds | None = None
    decode: ScaleBounds | None = None
    target_queue_depth_per_replica: int = Field(
        default=4, ge=1,
        description="Demand (queued + in-flight requests) one replica should carry; desired "
        "replicas = ceil(demand / this).",
    )  # fmt: skip
    scale_up_window_seconds: int = Field(
        default=0, ge=0, le=3600,
        description="Scale up only to the lowest recommendation of this window (0: at once).",
    )  # fmt: skip
    scale_down_window_seconds: int = Field(
        default=300, ge=0, le=3600,
        description="Scale down only to the highest recommendation of this window.",
    )  # fmt: skip
    max_scale_up_step: int = Field(
        default=4, ge=1, le=1000, description="Replicas added per decision at most."
    )
    max_scale_down_step: int = Field(
        default=1, ge=1, le=1000, description="Replicas removed (drained) per decision at most."
    )
    scale_to_zero_after_seconds: int = Field(
        default=600, ge=0, le=86400,
        description="A role with minReplicas 0 goes to zero after this long with no demand.",
    )  # fmt: skip

    def bounds_by_role(self) -> dict[Role, ScaleBounds]:
        """The roles this autoscaler owns (none when disabled)."""
        if not self.enabled:
            return {}
        found = {Role.GENERAL: self.general, Role.PREFILL: self.prefill, Role.DECODE: self.decode}
        return {role: b for role, b in found.items() if b is not None}

    def scales_from_zero(self) -> bool:
        """Whether some owned role may be at zero replicas (requests then wait for a start)."""
        return any(b.min_replicas == 0 for b in self.bounds_by_role().values())


class AutoscaleDecision(ApiModel):
    """The autoscaler's last decision for one role: what it chose, why, from what."""

    role: Role
    replicas: int = Field(ge=0)
    reason: str = ""
    inputs: dict[str, float] = Field(default_factory=dict)
    source: str = Field(default="", description="router, engines, or none (no demand read)")
    last_decision_time: str | None = None
    last_scale_time: str | None = None


class AutoscalingStatus(ApiModel):
    roles: list[AutoscaleDecision] = Field(default_factory=list)


class ScaleStatus(ApiModel):
    """What the /scale subresource reports (the general role)."""

    replicas: int = Field(default=0, ge=0)
    selector: str = ""
