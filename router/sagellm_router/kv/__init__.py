"""KV-cache events from the engines (vLLM's ``--kv-events-config``): decoding, a block index of
which engine holds which prompt prefix, and the ZMQ subscriber that feeds it."""
