RequestMetadata(
    request_id="unique-id",              # 必需
    user_id="user-123",                  # �选
    priority=RequestPriority.NORMAL,     # 优先级
    slo_deadline_ms=1000,                # SLO截�时间
    max_tokens=100,                      # 最大生�token数
    model_name="llama-3-70b",            # 模��
    cost_budget=0.01,                    # �本预算
    parallelism_hint=ParallelismType.TP, # 并行�略�示
)
