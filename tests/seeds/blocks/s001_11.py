cp = ControlPlaneManager(
    scheduling_policy="adaptive",        # 自适应（��）
    routing_strategy="load_balanced",
    enable_monitoring=True,
)
