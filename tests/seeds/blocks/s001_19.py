metrics = cp.get_metrics()

# 关键指标
print(f"���: {metrics.requests_per_second:.2f} req/s")
print(f"平�延迟: {metrics.avg_latency_ms:.2f}ms")
print(f"尾延迟(p95): {metrics.p95_latency_ms:.2f}ms")
print(f"尾延迟(p99): {metrics.p99_latency_ms:.2f}ms")
print(f"SLO�守�: {metrics.slo_compliance_rate:.2%}")

# 如�SLO�守��
if metrics.slo_compliance_rate < 0.95:
    cp.update_policy("slo_aware")  # 切�到SLO感知
    
# 如��本过高
if metrics.cost_per_token > 0.001:
    cp.update_policy("cost_optimized")  # 切�到�本优化
