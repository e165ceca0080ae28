# 使用特定调度�略
cp = ControlPlaneManager(
    scheduling_policy="slo_aware",  # SLO感知调度
    routing_strategy="affinity",     # 用户亲和性路由
)

# �交带并行�示的请求
from vllm.control_plane.types import ParallelismType

request = RequestMetadata(
    request_id="req-002",
    priority=RequestPriority.CRITICAL,
    slo_deadline_ms=500,
    parallelism_hint=ParallelismType.HYBRID,  # �示使用混�并行
    cost_budget=0.01,  # �本预算
)
