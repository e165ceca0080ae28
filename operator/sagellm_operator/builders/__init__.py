"""Pure builders: Kubernetes manifests (plain dicts) from typed specs and plans. No I/O."""
