# 检查是�有�用�例
status = cp.get_status()
print(f"Available instances: {status['available_instances']}")

# 检查�例�康状�
for instance in cp.get_instances():
    print(f"{instance.instance_id}: healthy={instance.is_healthy}")
    
# �能需�注册新�例或�动vLLM
