# 需�缓�亲和性
cp.router.routing_strategy = "locality"

# 需�用户会�一致性
cp.router.routing_strategy = "affinity"

# 通用负载�衡
cp.router.routing_strategy = "load_balanced"
