# 使用 DP (数�并行) �高��
manager = ControlPlaneManager(scheduling_policy="fifo")
instance = ExecutionInstance(
    instance_id="batch-instance",
    data_parallel_size=4,
    gpu_count=4,
)
