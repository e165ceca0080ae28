"""End-to-end scenarios against a real cluster (kind); see docs/deployment.md."""
