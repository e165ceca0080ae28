"""``sagellm bench``: side-by-side benchmarks of the router on simulated fleets (see
docs/benchmarks.md)."""
