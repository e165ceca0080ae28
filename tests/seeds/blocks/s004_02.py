from sage.llm import UnifiedInferenceClient

# Create client (uses Control Plane with vLLM backend)
client = UnifiedInferenceClient.create()

# LLM inference
response = client.chat([
    {"role": "user", "content": "Hello!"}
])

# Embedding
vectors = client.embed(["text1", "text2"])
