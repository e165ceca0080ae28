# 使用 Priority 调度
manager = ControlPlaneManager(scheduling_policy="priority")

# 高优先级请求
high_priority_request = RequestMetadata(
    priority=RequestPriority.CRITICAL,
    slo_deadline_ms=500,
)

# �优先级请求
low_priority_request = RequestMetadata(
    priority=RequestPriority.LOW,
)
