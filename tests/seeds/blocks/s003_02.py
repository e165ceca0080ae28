from control_plane import (
    ControlPlaneManager,
    ExecutionInstance,
    ExecutionInstanceType,
    PDSeparationConfig,
    PrefillingConfig,
    DecodingConfig,
)

# �用 PD 分离
pd_config = PDSeparationConfig(
    enabled=True,
    routing_policy="adaptive",
    prefilling_threshold_input_tokens=800,
)

manager = ControlPlaneManager(
    scheduling_policy="adaptive",
    enable_pd_separation=True,
    pd_config=pd_config,
)

# Prefilling �例 (优化��)
prefilling_instance = ExecutionInstance(
    instance_id="prefill-1",
    host="localhost",
    port=8000,
    model_name="meta-llama/Llama-2-7b",
    instance_type=ExecutionInstanceType.PREFILLING,
    tensor_parallel_size=4,  # 高��
    gpu_count=4,
    prefilling_config=PrefillingConfig(
        target_batch_size=64,
        enable_chunked_prefill=True,
    ),
)

# Decoding �例 (优化延迟)
decoding_instance = ExecutionInstance(
    instance_id="decode-1",
    host="localhost",
    port=8001,
    model_name="meta-llama/Llama-2-7b",
    instance_type=ExecutionInstanceType.DECODING,
    tensor_parallel_size=1,  # �延迟
    gpu_count=1,
    decoding_config=DecodingConfig(
        target_latency_ms=50,
        max_parallel_requests=200,
    ),
)

manager.register_instance(prefilling_instance)
manager.register_instance(decoding_instance)
