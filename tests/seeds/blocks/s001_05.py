    # 创建高优先级请求
    request = RequestMetadata(
        request_id="req-001",
        user_id="user-123",
        priority=RequestPriority.HIGH,
        slo_deadline_ms=1000,      # 1秒SLO
        max_tokens=100,
        model_name="llama-3-70b",
    )
    
    # �交请求
    await cp.submit_request(request)
    print("✓ Request submitted")
