# 检查��例负载
for instance in cp.get_instances():
    inst_metrics = cp.get_instance_metrics(instance.instance_id)
    print(f"{instance.instance_id}: load={inst_metrics['current_load']:.2%}")

# 切�路由�略
cp.router.routing_strategy = "power_of_two"  # 更好的负载�衡

# 或使用weighted_round_robin
cp.load_balancer.select_instance(
    cp.get_instances(),
    algorithm="weighted_round_robin"
)
