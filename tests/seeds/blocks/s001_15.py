# ��所有�例
instances = cp.get_instances()
for instance in instances:
    print(f"{instance.instance_id}: Load={instance.current_load:.2%}")

# ���个�例指标
metrics = cp.get_instance_metrics("vllm-1")
print(f"Active: {metrics['active_requests']}")
print(f"Latency: {metrics['avg_latency_ms']}ms")
print(f"Healthy: {metrics['is_healthy']}")

# 注销�例
cp.unregister_instance("vllm-1")
