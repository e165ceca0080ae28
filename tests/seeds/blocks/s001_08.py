#!/usr/bin/env python3
import asyncio
from vllm.control_plane import (
    ControlPlaneManager,
    ExecutionInstance,
    RequestMetadata,
    RequestPriority,
)

async def main():
    # 1. 创建Control Plane
    cp = ControlPlaneManager(
        scheduling_policy="adaptive",
        routing_strategy="load_balanced",
    )
    
    # 2. 注册�例
    instance = ExecutionInstance(
        instance_id="vllm-1",
        host="localhost",
        port=8000,
        model_name="llama-3-70b",
        tensor_parallel_size=4,
        gpu_count=4,
        gpu_memory_gb=80.0,
        max_concurrent_requests=100,
    )
    cp.register_instance(instance)
    
    # 3. �动
    await cp.start()
    
    # 4. �交请求
    for i in range(5):
        request = RequestMetadata(
            request_id=f"req-{i:03d}",
            user_id=f"user-{i}",
            priority=RequestPriority.NORMAL if i % 2 else RequestPriority.HIGH,
            slo_deadline_ms=1000,
            max_tokens=100,
            model_name="llama-3-70b",
        )
        await cp.submit_request(request)
    
    # 5. 监�
    await asyncio.sleep(2)
    metrics = cp.get_metrics()
    print(f"Completed: {metrics.completed_requests}")
    print(f"SLO Compliance: {metrics.slo_compliance_rate:.2%}")
    
    # 6. ��
    await cp.stop()

if __name__ == "__main__":
    asyncio.run(main())
