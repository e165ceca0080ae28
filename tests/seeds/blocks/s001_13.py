# �始�略
cp = ControlPlaneManager(scheduling_policy="fifo")

# �期切�
cp.update_policy("adaptive")       # 切�到自适应
print(cp.get_status()['scheduling_policy'])  # 查看当��略
