# 创建第一个�例（4 GPU张�并行）
instance1 = ExecutionInstance(
    instance_id="vllm-tp4",
    host="localhost",
    port=8000,
    model_name="llama-3-70b",
    tensor_parallel_size=4,
    gpu_count=4,
    gpu_memory_gb=80.0,
    max_concurrent_requests=100,
)
cp.register_instance(instance1)

# 创建第二个�例（混�并行）
instance2 = ExecutionInstance(
    instance_id="vllm-hybrid",
    host="localhost",
    port=8001,
    model_name="llama-3-70b",
    tensor_parallel_size=2,
    pipeline_parallel_size=2,
    gpu_count=4,
    gpu_memory_gb=80.0,
    max_concurrent_requests=80,
)
cp.register_instance(instance2)
