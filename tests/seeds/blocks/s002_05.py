# 在运行时切换调度策略
cp.update_policy("cost_optimized")  # 切换到成本优化模式

# 获取Control Plane状态
status = cp.get_status()
print(f"Running: {status['running']}")
print(f"Policy: {status['scheduling_policy']}")
print(f"Pending: {status['pending_requests']}")
print(f"Running: {status['running_requests']}")
