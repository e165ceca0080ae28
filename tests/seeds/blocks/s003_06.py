import asyncio
from control_plane import (
    ControlPlaneManager,
    ExecutionInstance,
    RequestMetadata,
    RequestPriority,
)


async def main():
    # 1. 创建�制平�管�器
    manager = ControlPlaneManager(
        scheduling_policy="adaptive",  # 自适应调度
        routing_strategy="load_balanced",  # 负载�衡
        enable_monitoring=True,
    )
    
    # 2. 注册 vLLM �例
    instance = ExecutionInstance(
        instance_id="vllm-1",
        host="localhost",
        port=8000,
        model_name="meta-llama/Llama-2-7b-chat-hf",
        tensor_parallel_size=2,
        gpu_count=2,
        max_concurrent_requests=100,
    )
    manager.register_instance(instance)
    
    # 3. �动�制平�
    await manager.start()
    
    # 4. �交��请求
    request = RequestMetadata(
        request_id="req-001",
        user_id="user-123",
        priority=RequestPriority.HIGH,
        slo_deadline_ms=1000,  # 1秒SLO
        max_tokens=512,
        prompt="Explain quantum computing in simple terms.",
    )
    
    request_id = await manager.submit_request(request)
    print(f"Request submitted: {request_id}")
    
    # 5. �待并��结�
    await asyncio.sleep(2)
    status = await manager.get_request_status(request_id)
    print(f"Request status: {status}")
    
    # 6. ��性能指标
    metrics = manager.get_metrics()
    print(f"Throughput: {metrics.requests_per_second:.2f} req/s")
    print(f"Avg Latency: {metrics.avg_latency_ms:.2f} ms")
    
    # 7. ���制平�
    await manager.stop()


if __name__ == "__main__":
    asyncio.run(main())
