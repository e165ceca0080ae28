"""``python -m sagellm_router.bench SCENARIO ...`` (same as ``sagellm bench``)."""

from sagellm_router.bench.cli import bench

bench(prog_name="sagellm bench")
