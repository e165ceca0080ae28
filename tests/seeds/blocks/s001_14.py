# �交请求
request_id = "req-001"
await cp.submit_request(request)

# 查询状�
status = await cp.get_request_status(request_id)
print(status)  # RequestStatus.QUEUED or RUNNING

# �消请求（�能�消pending的）
await cp.cancel_request(request_id)
