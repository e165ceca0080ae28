cp = ControlPlaneManager(
    scheduling_policy="cost_optimized",  # �本优化
    routing_strategy="load_balanced",
)

# �交带�本预算的请求
request = RequestMetadata(
    request_id="req-batch",
    priority=RequestPriority.LOW,
    cost_budget=0.05,  # $0.05预算
    max_tokens=500,
)
