from control_plane import ParallelismConfig

# 自动优化并行�置
config = ParallelismConfig(
    auto_optimize=True,
    supported_strategies=["TP", "PP", "Hybrid"],
)

# 手动指定并行�置
instance = ExecutionInstance(
    instance_id="hybrid-instance",
    tensor_parallel_size=4,     # TP=4
    pipeline_parallel_size=2,   # PP=2
    data_parallel_size=2,       # DP=2
    gpu_count=16,
)
