# 通过parallelism_hint�示
request = RequestMetadata(
    request_id="req-001",
    parallelism_hint=ParallelismType.TENSOR_PARALLEL,  # �示TP
)

# 或让系统自动选择（��）
request = RequestMetadata(
    request_id="req-002",
    # �设置hint，系统自动优化
)
