"""``InferencePool``: a model served by vLLM instances with a parallelism plan and roles.

Field names are snake_case in Python and camelCase on the wire (``max_model_len`` ↔
``maxModelLen``). Cross-field rules carry CEL (``x-kubernetes-validations``) so the API server
rejects them; the same rules are checked in Python by :mod:`sagellm_core.api.validation`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from sagellm_core.api.autoscaling import AutoscalingSpec, AutoscalingStatus, ScaleStatus
from sagellm_core.api.cel import cel, cel_list, cel_rules
from sagellm_core.api.common import (
    ApiModel,
    Architecture,
    Condition,
    DType,
    EngineKind,
    KVConnector,
    ParallelismStrategy,
    Priority,
    Quantization,
    Role,
    RoutingStrategy,
    SchedulingPolicy,
)
from sagellm_core.api.labels import API_VERSION, POOL_KIND
from sagellm_core.api.pool_status import Endpoint, PoolPhase, RolePlan, RoleStatus
from sagellm_core.owned_args import OWNED_ENV, OWNED_FLAGS

Quantity = int | str

_MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9._/:-]*$"
_OWNED_FLAGS = cel_list(OWNED_FLAGS)
_OWNED_ENV = cel_list(OWNED_ENV)
_NOT_OWNED_ARG = f"!(a in {_OWNED_FLAGS}) && !{_OWNED_FLAGS}.exists(f, a.startsWith(f + '='))"
_NOT_AUTO = "!has(self.tensor) && !has(self.pipeline) && !has(self.data) && !has(self.expert)"


class ModelSpec(ApiModel):
    """The model to serve and the facts the planner needs about it."""

    model_config = cel_rules(
        cel(
            "self.architecture != 'MoE' || has(self.experts)",
            "model.experts is required when model.architecture is MoE",
            ".experts",
        ),
        cel(
            "!has(self.quantizeOnLoad) || !self.quantizeOnLoad || "
            "(has(self.quantization) && self.quantization == 'fp8')",
            "model.quantizeOnLoad needs model.quantization: fp8 (vLLM quantizes to fp8 at load; "
            "awq, gptq, int8 and int4 need a checkpoint quantized that way)",
            ".quantizeOnLoad",
        ),
    )

    name: str = Field(max_length=253, pattern=_MODEL_NAME, description="Served model name.")
    source: str = Field(
        min_length=1, description="Hugging Face id, pvc://claim/path or s3://bucket/path."
    )
    revision: str | None = Field(
        default=None, description="Model revision (branch, tag or commit)."
    )
    task: Literal["generate", "embed"] = Field(
        default="generate", description="generate: completions/chat; embed: /v1/embeddings."
    )
    parameters: float = Field(gt=0, le=10000, description="Parameter count in billions.")
    architecture: Architecture = Field(default=Architecture.DENSE, description="Dense or MoE.")
    experts: int | None = Field(default=None, ge=2, le=1024, description="MoE experts.")
    layers: int | None = Field(
        default=None, ge=1, le=1000, description="Model shape for planning; estimated if unset."
    )
    attention_heads: int | None = Field(default=None, ge=1, le=1024)
    kv_heads: int | None = Field(default=None, ge=1, le=1024)
    head_dim: int | None = Field(default=None, ge=1, le=1024)
    dtype: DType = Field(default="bfloat16", description="Weight dtype (vLLM --dtype).")
    quantization: Quantization | None = Field(
        default=None,
        description="How the served weights are quantized (sizes the plan). By default the "
        "checkpoint is already quantized and vLLM reads its quantization_config, so no "
        "--quantization flag is passed.",
    )
    quantize_on_load: bool = Field(
        default=False,
        description="Quantize an unquantized (BF16/FP16) checkpoint at load: passes "
        "--quantization fp8. Only with quantization: fp8.",
    )
    max_model_len: int = Field(
        default=8192, ge=16, le=10_000_000, description="Context length (vLLM --max-model-len)."
    )


class EnvVar(ApiModel):
    name: str = Field(min_length=1, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
    value: str = ""


class SecretKeyRef(ApiModel):
    name: str = Field(min_length=1, max_length=253)
    key: str = Field(default="token", min_length=1)


class ModelCache(ApiModel):
    pvc_name: str = Field(min_length=1, max_length=253)
    mount_path: str = Field(default="/root/.cache/huggingface", pattern=r"^/")
    read_only: bool = False


class Resources(ApiModel):
    requests: dict[str, Quantity] = Field(default_factory=dict)
    limits: dict[str, Quantity] = Field(default_factory=dict)


class EngineSpec(ApiModel):
    """How each instance runs: engine kind, image, GPUs and pod placement."""

    model_config = cel_rules(
        cel(f"!has(self.extraArgs) || self.extraArgs.all(a, {_NOT_OWNED_ARG})",
             "extraArgs sets a flag the operator owns (listen address, parallelism, "
             "multi-node, --model, --served-model-name, --kv-transfer-config, "
             "--kv-events-config); remove it",
             ".extraArgs",
             f"'extraArgs sets ' + self.extraArgs.filter(a, !({_NOT_OWNED_ARG}))[0]"
             " + ', a flag the operator owns; remove it'"),
        cel(f"!has(self.env) || self.env.all(e, !(e.name in {_OWNED_ENV}))",
             "env sets a variable the operator owns; remove it", ".env",
             f"'env sets ' + self.env.filter(e, e.name in {_OWNED_ENV})[0].name"
             " + ', a variable the operator owns; remove it'"),
    )  # fmt: skip

    kind: EngineKind = Field(
        default=EngineKind.VLLM, description="vLLM, or Simulator (`sagellm sim`, no GPUs)."
    )
    image: str | None = Field(
        default=None, min_length=1, max_length=512, pattern=r"^\S+$",
        description="Image reference (no blanks); unset: the operator's default for the kind.",
    )  # fmt: skip
    extra_args: list[Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=list, max_length=64,
        description="Appended to the engine argv, after generated flags; flags the operator "
        "owns are refused.",
    )  # fmt: skip
    env: list[EnvVar] = Field(
        default_factory=list, max_length=128,
        description="Extra environment variables; those the operator owns are refused.",
    )  # fmt: skip
    hf_token_secret: SecretKeyRef | None = Field(
        default=None, description="Secret key holding HF_TOKEN for gated models."
    )
    gpu_type: str | None = Field(default=None, description="e.g. NVIDIA-H100-80GB-HBM3.")
    gpu_resource: str = Field(default="nvidia.com/gpu", description="Extended resource name.")
    gpu_memory_gib: float = Field(default=80, gt=0, le=1024, alias="gpuMemoryGiB")
    gpus_per_node: int = Field(
        default=8, ge=1, le=64, description="TP stays within a node; beyond it, multi-node."
    )
    gpu_memory_utilization: float = Field(default=0.9, gt=0.1, le=0.99)
    block_size: int = Field(default=16, ge=1, le=1024)
    enable_prefix_caching: bool = True
    resources: Resources | None = None
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    model_cache: ModelCache | None = None
    shm_size: Quantity = Field(default="16Gi", description="Size of the /dev/shm volume.")


class ParallelismSpec(ApiModel):
    """Auto asks the planner; other strategies take explicit sizes that must agree with it."""

    model_config = cel_rules(
        cel(f"self.strategy != 'Auto' || ({_NOT_AUTO})",
             "explicit parallelism sizes need a strategy other than Auto"),
        cel("self.strategy != 'TP' || ((!has(self.pipeline) || self.pipeline == 1) && "
             "(!has(self.data) || self.data == 1) && (!has(self.expert) || self.expert == 1))",
             "strategy TP sets only parallelism.tensor; use Hybrid to combine"),
        cel("self.strategy != 'PP' || ((!has(self.tensor) || self.tensor == 1) && "
             "(!has(self.data) || self.data == 1) && (!has(self.expert) || self.expert == 1))",
             "strategy PP sets only parallelism.pipeline; use Hybrid to combine"),
        cel("self.strategy != 'DP' || ((!has(self.tensor) || self.tensor == 1) && "
             "(!has(self.pipeline) || self.pipeline == 1) && "
             "(!has(self.expert) || self.expert == 1))",
             "strategy DP sets only parallelism.data; use Hybrid to combine"),
    )  # fmt: skip

    strategy: ParallelismStrategy = ParallelismStrategy.AUTO
    tensor: int | None = Field(default=None, ge=1, le=64)
    pipeline: int | None = Field(default=None, ge=1, le=64)
    data: int | None = Field(default=None, ge=1, le=1024)
    expert: int | None = Field(default=None, ge=1, le=1024)


class GeneralRole(ApiModel):
    replicas: int = Field(default=1, ge=0, le=1000)


class PrefillRole(ApiModel):
    replicas: int = Field(default=1, ge=0, le=1000)
    parallelism: ParallelismSpec | None = None
    target_batch_size: int | None = Field(
        default=None, ge=1,
        description="Tokens per engine step on prefill instances (vLLM --max-num-batched-tokens).",
    )  # fmt: skip
    chunked_prefill: bool = Field(
        default=True,
        description="false adds --no-enable-chunked-prefill: a prompt is prefilled in one step.",
    )


class DecodeRole(ApiModel):
    replicas: int = Field(default=1, ge=0, le=1000)
    parallelism: ParallelismSpec | None = None
    max_parallel_requests: int | None = Field(default=None, ge=1)


class KVTransfer(ApiModel):
    connector: KVConnector = KVConnector.NIXL


class RolesSpec(ApiModel):
    """Either ``general``, or ``prefill`` and ``decode`` together (disaggregated serving)."""

    model_config = cel_rules(
        cel("has(self.general) != (has(self.prefill) || has(self.decode))",
             "set either roles.general or roles.prefill with roles.decode, not both"),
        cel("has(self.prefill) == has(self.decode)",
             "roles.prefill and roles.decode must be set together"),
    )  # fmt: skip

    general: GeneralRole | None = None
    prefill: PrefillRole | None = None
    decode: DecodeRole | None = None
    kv_transfer: KVTransfer | None = None


class RateLimits(ApiModel):
    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)


class SchedulingSpec(ApiModel):
    """How the router queues and places this pool's requests."""

    policy: SchedulingPolicy = SchedulingPolicy.FIFO
    routing: RoutingStrategy = RoutingStrategy.LOAD_BALANCED
    pd_threshold_mode: Literal["Fixed", "Auto"] = "Fixed"
    pd_threshold_input_tokens: int = Field(
        default=800, ge=0, description="Prompts at least this long go prefill-then-decode."
    )
    default_priority: Priority = Priority.NORMAL
    slo_ttft_ms: int | None = Field(default=None, ge=1)
    slo_deadline_ms: int | None = Field(default=None, ge=1)
    cost_per_gpu_hour: float | None = Field(default=None, ge=0, alias="costPerGPUHour")
    max_queue_length: int = Field(
        default=1000, ge=0, description="Queued requests beyond this get 429."
    )
    queue_timeout_ms: int = Field(
        default=30000, ge=1, description="Requests queued longer get 503 with Retry-After."
    )
    rate_limits: RateLimits | None = None
    mid_stream_failover: bool = Field(
        default=True,
        description="Continue a stream on another engine when its engine dies or stalls "
        "mid-stream (prompt + text so far, max_tokens reduced). Off: the stream ends with an "
        "error event.",
    )


class LifecycleSpec(ApiModel):
    """How the operator retires an instance (scale-in, rolling update, pod deletion)."""

    drain_timeout_seconds: int | None = Field(
        default=None, ge=0, le=86400,
        description="Upper bound on one drain: from marking the instance draining to deleting "
        "it, and the engine pods' preStop wait. Unset: the operator's --drain-timeout. "
        "0 deletes at once without draining.",
    )  # fmt: skip


class InferencePoolSpec(ApiModel):
    model_config = cel_rules(
        cel("!has(self.parallelism) || self.parallelism.strategy != 'EP' || "
             "(has(self.model.architecture) && self.model.architecture == 'MoE')",
             "parallelism.strategy EP needs model.architecture MoE", ".parallelism.strategy"),
        cel("!has(self.roles.prefill) || !has(self.roles.prefill.chunkedPrefill) || "
             "self.roles.prefill.chunkedPrefill || !has(self.roles.prefill.targetBatchSize) || "
             "self.roles.prefill.targetBatchSize >= self.model.maxModelLen",
             "roles.prefill.targetBatchSize must be at least model.maxModelLen when "
             "chunkedPrefill is false (vLLM could never schedule a longer prompt)",
             ".roles.prefill.targetBatchSize"),
        cel("!has(self.scheduling) || !has(self.scheduling.routing) || "
             "self.scheduling.routing != 'kv_aware' || !has(self.engine) || "
             "!has(self.engine.enablePrefixCaching) || self.engine.enablePrefixCaching",
             "scheduling.routing kv_aware needs engine.enablePrefixCaching (engines publish "
             "KV-cache events only for cached blocks)", ".engine.enablePrefixCaching"),
        *(cel(f"!has(self.autoscaling) || !has(self.autoscaling.{r}) || has(self.roles.{r})",
               f"autoscaling.{r} gives bounds for a role the pool does not have (roles.{r})",
               f".autoscaling.{r}") for r in ("general", "prefill", "decode")),
    )  # fmt: skip

    model: ModelSpec
    engine: EngineSpec = Field(default_factory=EngineSpec)
    parallelism: ParallelismSpec = Field(default_factory=ParallelismSpec)
    roles: RolesSpec
    scheduling: SchedulingSpec = Field(default_factory=SchedulingSpec)
    autoscaling: AutoscalingSpec | None = None
    lifecycle: LifecycleSpec = Field(default_factory=LifecycleSpec)

    def role_names(self) -> list[Role]:
        """The roles this pool runs, in a stable order."""
        if self.roles.general is not None:
            return [Role.GENERAL]
        return [Role.PREFILL, Role.DECODE]

    def replicas_for(self, role: Role | str) -> int:
        role = Role(role)
        section = {
            Role.GENERAL: self.roles.general,
            Role.PREFILL: self.roles.prefill,
            Role.DECODE: self.roles.decode,
        }[role]
        return section.replicas if section is not None else 0

    def max_replicas_for(self, role: Role | str) -> int:
        """The most replicas the role may run: its autoscaling max when the autoscaler owns
        it, else its replicas."""
        owned = self.autoscaling.bounds_by_role() if self.autoscaling else {}
        bounds = owned.get(Role(role))
        return bounds.max_replicas if bounds is not None else self.replicas_for(role)

    def parallelism_for(self, role: Role | str) -> ParallelismSpec:
        """The role's own parallelism when set, else the pool's."""
        role = Role(role)
        override = None
        if role is Role.PREFILL and self.roles.prefill is not None:
            override = self.roles.prefill.parallelism
        if role is Role.DECODE and self.roles.decode is not None:
            override = self.roles.decode.parallelism
        return override or self.parallelism


class InferencePoolStatus(ApiModel):
    phase: PoolPhase = "Pending"
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    plan: list[RolePlan] = Field(default_factory=list)
    roles: list[RoleStatus] = Field(default_factory=list)
    ready_replicas: int = 0
    desired_replicas: int = 0
    endpoints: list[Endpoint] = Field(default_factory=list)
    model: str | None = Field(
        default=None, description="The served model name (spec.model.name) the router lists."
    )
    task: Literal["generate", "embed"] | None = Field(
        default=None, description="spec.model.task: which OpenAI routes the router sends here."
    )
    scheduling: SchedulingSpec | None = Field(
        default=None, description="spec.scheduling as the router applies it (absent: not set)."
    )
    scale_from_zero: bool = Field(
        default=False,
        description="spec.autoscaling lets a role sit at zero replicas: the router holds its "
        "requests while an instance starts.",
    )
    max_gpus: int = Field(
        default=0, ge=0, alias="maxGPUs",
        description="GPUs the pool may use at max replicas (autoscaling max, else replicas)",
    )  # fmt: skip
    autoscaling: AutoscalingStatus | None = None
    scale: ScaleStatus | None = None


class InferencePool(ApiModel):
    api_version: Literal["sagellm.io/v1alpha1"] = API_VERSION
    kind: Literal["InferencePool"] = POOL_KIND
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: InferencePoolSpec
    status: InferencePoolStatus | None = None
