manager = ControlPlaneManager(
    routing_strategy="affinity",  # 用户亲和性路由
)
