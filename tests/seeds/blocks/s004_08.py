# 使用 SLO-Aware 调度 + PD 分离
manager = ControlPlaneManager(
    scheduling_policy="slo_aware",
    enable_pd_separation=True,
)
# 注册 decoding 优化�例（�延迟）
