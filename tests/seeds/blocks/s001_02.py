# 使用自适应调度�略（��）
cp = ControlPlaneManager(
    scheduling_policy="adaptive",      # 自动选择最佳�略
    routing_strategy="load_balanced",  # 负载�衡路由
    enable_monitoring=True,            # �用监�
)
