"""vLLM engine for GPU serving: same prompts, same stop strings, same log-probs.

Imported only when a model spec asks for ``backend: vllm`` (the ``gpu`` extra).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rlog.backends.base import BackendError, Generation, GenerationParams
from rlog.config import ModelSpec
from rlog.contract.answers import TokenLogprob
from rlog.contract.prompts import ChatPrompt
from rlog.models import resolve_adapter, resolve_model


class VLLMBackend:
    def __init__(self, model_path: str | Path, *, adapter: str | Path | None = None,
                 model_id: str | None = None, gpu_memory_utilization: float = 0.85) -> None:
        from vllm import LLM

        self._adapter = None
        if adapter is not None:
            from vllm.lora.request import LoRARequest

            self._adapter = LoRARequest(Path(adapter).name, 1, str(adapter))
        try:
            self.llm = LLM(model=str(model_path), enable_lora=adapter is not None,
                           gpu_memory_utilization=gpu_memory_utilization)
        except Exception as e:  # vLLM raises many types for bad models / no GPU
            raise BackendError(f"vLLM could not load {model_path}: {e}") from e
        self.model_id = model_id or Path(model_path).name

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> VLLMBackend:
        adapter = resolve_adapter(spec.adapter)
        mid = spec.model + (f"+{adapter.name}" if adapter else "")
        return cls(resolve_model(spec.model), adapter=adapter, model_id=mid)

    def generate(self, prompts: Sequence[ChatPrompt], params: GenerationParams) -> list[Generation]:
        from vllm import SamplingParams

        if not prompts:
            return []
        sp = SamplingParams(max_tokens=params.max_new_tokens, temperature=params.temperature,
                            stop=list(params.stop) or None, include_stop_str_in_output=True,
                            logprobs=0 if params.logprobs else None)
        conversations = [[*p.messages, {"role": "assistant", "content": p.prefill}] for p in prompts]
        outs = self.llm.chat(conversations, sp, add_generation_prompt=False, continue_final_message=True,
                             lora_request=self._adapter, use_tqdm=False)
        results = []
        for o in outs:
            c = o.outputs[0]
            tokens = []
            if c.logprobs:
                for tid, lp in zip(c.token_ids, c.logprobs, strict=False):
                    entry = lp.get(tid)
                    if entry is not None:
                        tokens.append(TokenLogprob(entry.decoded_token or "", float(entry.logprob)))
            results.append(Generation(c.text, tuple(tokens), len(o.prompt_token_ids or ()), len(c.token_ids),
                                      "length" if c.finish_reason == "length" else "stop"))
        return results
