# executor.py �的直�集�
from vllm.engine.async_llm_engine import AsyncLLMEngine
from vllm.sampling_params import SamplingParams

engine = AsyncLLMEngine.from_engine_args(engine_args)
outputs = await engine.generate(
    prompt=prompt,
    sampling_params=sampling_params,
    request_id=request_id,
)
