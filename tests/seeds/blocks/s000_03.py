import asyncio
from vllm.control_plane import (
    ControlPlaneManager,
    RequestMetadata,
    ExecutionInstance,
    RequestPriority,
)

async def main():
    # 创建Control Plane
    cp = ControlPlaneManager(
        scheduling_policy="adaptive",  # 自适应调度
        routing_strategy="load_balanced",  # 负载�衡路由
        enable_monitoring=True,
    )
    
    # 注册vLLM�例
    instance1 = ExecutionInstance(
        instance_id="vllm-1",
        host="localhost",
        port=8000,
        model_name="llama-3-70b",
        tensor_parallel_size=4,
        gpu_count=4,
        gpu_memory_gb=80.0,
        max_concurrent_requests=100,
    )
    cp.register_instance(instance1)
    
    instance2 = ExecutionInstance(
        instance_id="vllm-2",
        host="localhost",
        port=8001,
        model_name="llama-3-70b",
        tensor_parallel_size=2,
        pipeline_parallel_size=2,
        gpu_count=4,
        gpu_memory_gb=80.0,
        max_concurrent_requests=50,
    )
    cp.register_instance(instance2)
    
    # �动Control Plane
    await cp.start()
    
    # �交��请求
    request = RequestMetadata(
        request_id="req-001",
        user_id="user-123",
        priority=RequestPriority.HIGH,
        slo_deadline_ms=1000,  # 1秒SLO
        max_tokens=100,
        model_name="llama-3-70b",
    )
    
    request_id = await cp.submit_request(request)
    print(f"Request submitted: {request_id}")
    
    # 查询状�
    await asyncio.sleep(1)
    status = await cp.get_request_status(request_id)
    print(f"Request status: {status}")
    
    # ��指标
    metrics = cp.get_metrics()
    print(f"Metrics: {metrics}")
    
    # ��Control Plane
    await cp.stop()

if __name__ == "__main__":
    asyncio.run(main())
