async def main():
    # 创建�制平�管�器
    manager = ControlPlaneManager(
        scheduling_policy="adaptive",
        enable_pd_separation=True,
    )
    
    # 注册 vLLM �例
    instance = ExecutionInstance(
        instance_id="llama-instance-1",
        model_name="meta-llama/Llama-2-7b-chat-hf",
        tensor_parallel_size=2,
        gpu_count=2,
    )
    manager.register_instance(instance)
    
    # 处�请求
    from vllm.sampling_params import SamplingParams
    
    prompt = "Hello, how are you?"
    sampling_params = SamplingParams(
        temperature=0.7,
        top_p=0.9,
        max_tokens=512,
    )
    
    output = await manager.process_request(
        prompt=prompt,
        sampling_params=sampling_params,
    )
    
    print(f"Output: {output}")
    
    # ��性能指标
    metrics = manager.get_metrics()
    print(f"��: {metrics.throughput} req/s")
    print(f"平�延迟: {metrics.avg_latency} ms")

if __name__ == "__main__":
    asyncio.run(main())
