from control_plane import ControlPlaneManager

# 创建�制平�，使用自适应调度
manager = ControlPlaneManager(
    scheduling_policy="adaptive",  # �选：fifo, priority, slo_aware, cost_optimized
    routing_strategy="load_balanced",
    enable_monitoring=True,
)
