# 使用 Cost-Optimized 调度
manager = ControlPlaneManager(scheduling_policy="cost_optimized")

# 设置�本预算
request = RequestMetadata(
    cost_budget=0.01,  # 最多花费 $0.01
)
