"""Prefill/decode-separated execution: the NIXL proxy protocol, the PD decision and its
threshold (fixed or tuned online). See docs/router.md, "PD-separated execution"."""
