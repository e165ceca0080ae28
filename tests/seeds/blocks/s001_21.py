# 检查SLO�规
metrics = cp.get_metrics()
print(f"SLO violations: {metrics.slo_violations}")

# �试优先级调度
cp.update_policy("priority")

# 或�加�例
new_instance = ExecutionInstance(...)
cp.register_instance(new_instance)
