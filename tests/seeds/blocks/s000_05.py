# 在�行时切�调度�略
cp.update_policy("cost_optimized")  # 切�到�本优化模�

# ��Control Plane状�
status = cp.get_status()
print(f"Running: {status['running']}")
print(f"Policy: {status['scheduling_policy']}")
print(f"Pending: {status['pending_requests']}")
print(f"Running: {status['running_requests']}")
