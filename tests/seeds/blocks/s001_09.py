cp = ControlPlaneManager(
    scheduling_policy="slo_aware",     # SLO感知调度
    routing_strategy="affinity",        # 用户亲和路由
    enable_monitoring=True,
)

# �交带SLO的请求
request = RequestMetadata(
    request_id="req-critical",
    priority=RequestPriority.HIGH,
    slo_deadline_ms=500,  # 严格：500ms
)
