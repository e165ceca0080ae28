cp = ControlPlaneManager(
    scheduling_policy="priority",
    routing_strategy="locality",  # 哈希路由�高缓�命�
)
