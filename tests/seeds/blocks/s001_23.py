# 生命周期
await cp.start()
await cp.stop()

# �例管�
cp.register_instance(instance)
cp.unregister_instance(instance_id)
cp.get_instances()
cp.get_instance_metrics(instance_id)

# 请求管�
await cp.submit_request(request)
await cp.get_request_status(request_id)
await cp.cancel_request(request_id)

# 监�
cp.get_metrics()
cp.get_status()

# �略
cp.update_policy(policy_name)
