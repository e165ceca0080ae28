    # �待处�
    await asyncio.sleep(2)
    
    # ��指标
    metrics = cp.get_metrics()
    print(f"Completed: {metrics.completed_requests}")
    print(f"Failed: {metrics.failed_requests}")
    print(f"Avg Latency: {metrics.avg_latency_ms:.2f}ms")
    print(f"SLO Compliance: {metrics.slo_compliance_rate:.2%}")
    
    # ��系统状�
    status = cp.get_status()
    print(f"Running: {status['running_requests']}")
    print(f"Queued: {status['pending_requests']}")
