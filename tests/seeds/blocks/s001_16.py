# 如�有严格SLO�求
cp.update_policy("slo_aware")

# 如��最�化�本
cp.update_policy("cost_optimized")

# �确定时用自适应
cp.update_policy("adaptive")
