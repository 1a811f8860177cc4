"""vLLM in-process engine for GPU serving: same prompts, same stop strings, same answers.

Imported only when a model spec asks for ``backend: vllm`` (the ``gpu`` extra). One engine
per base model serves every stage: each stage is a ``LoRARequest`` on it
(``enable_lora``, ``max_loras=2``), and prefix caching keeps the shared instructions of
every prompt computed once. Prompts are rendered and tokenised here with the model's own
chat template and fed as token ids, so the engine reads exactly what the transformers
backend reads.

- R-Log-fast is scored in one pass: one generated token with its top log-probabilities,
  P(abnormal) renormalised over the verdicts' first tokens (by token id).
- R-Log writes its answer in steps (``VLLMTranscript``): forced text is appended, a
  choice is scored from the prompt log-probabilities of each continuation (exact
  probabilities, as the transformers backend scores them: the answer contract returns
  them, which a constrained choice alone would not), texts are short greedy generations.
- ``LLM.generate`` blocks: the cascade calls it from its worker threads (the stream's
  pool), never on the event loop.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rlog.backends.base import (
    BackendError,
    Generation,
    GenerationParams,
    TextTranscript,
    common_prefix,
    label_first_tokens,
    label_probability,
    renormalised,
)
from rlog.backends.transformers_backend import render_chat
from rlog.config import ModelSpec
from rlog.contract.answers import TokenLogprob
from rlog.contract.prompts import VERDICTS, ChatPrompt
from rlog.models import Calibration, context_length, load_calibration, resolve_adapter, resolve_model

TOP_LOGPROBS = 20

_ENGINES: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_ENGINES_LOCK = threading.Lock()


class _Engine:
    """One ``vllm.LLM`` and the LoRA requests registered on it (ids are per engine)."""

    def __init__(self, model_path: Path, *, dtype: str, gpu_memory_utilization: float, max_lora_rank: int,
                 max_model_len: int | None) -> None:
        from vllm import LLM

        try:
            self.llm = LLM(model=str(model_path), dtype=dtype, enable_lora=True, max_loras=2,
                           max_lora_rank=max_lora_rank, enable_prefix_caching=True,
                           gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len)
        except Exception as e:  # vLLM raises many types for bad models / no GPU
            raise BackendError(f"vLLM could not load {model_path}: {e}") from e
        self.loras: dict[str, object] = {}

    def lora(self, adapter: Path | None):
        if adapter is None:
            return None
        from vllm.lora.request import LoRARequest

        key = str(adapter.resolve())
        if key not in self.loras:
            self.loras[key] = LoRARequest(adapter.name, len(self.loras) + 1, key)
        return self.loras[key]


def _engine(model_path: Path, **kw) -> _Engine:
    key = (str(Path(model_path).resolve()), *sorted(kw.items()))
    with _ENGINES_LOCK:
        found = _ENGINES.get(key)
        if found is None:
            found = _ENGINES[key] = _Engine(Path(model_path), **kw)
        return found


class VLLMBackend:
    def __init__(self, model_path: str | Path, *, adapter: str | Path | None = None, model_id: str | None = None,
                 dtype: str = "auto", gpu_memory_utilization: float = 0.85, max_lora_rank: int = 64,
                 max_model_len: int | None = None) -> None:
        from transformers import AutoTokenizer

        path = Path(model_path)
        adapter = resolve_adapter(adapter)
        vdtype = "bfloat16" if dtype == "auto" else dtype
        self.engine = _engine(path, dtype=vdtype, gpu_memory_utilization=gpu_memory_utilization,
                              max_lora_rank=max_lora_rank, max_model_len=max_model_len)
        self._lora = self.engine.lora(adapter)
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        self.model_id = model_id or (path.name + (f"+{adapter.name}" if adapter else ""))
        self.precision = vdtype
        self.calibration: Calibration | None = load_calibration(adapter if adapter is not None else path, vdtype)
        engine_config = getattr(getattr(self.engine.llm, "llm_engine", None), "model_config", None)
        self.context = (max_model_len or getattr(engine_config, "max_model_len", None) or context_length(path)
                        or 1 << 30)

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> VLLMBackend:
        adapter = resolve_adapter(spec.adapter)
        mid = spec.model + (f"+{adapter.name}" if adapter else "")
        return cls(resolve_model(spec.model), adapter=adapter, model_id=mid, dtype=spec.dtype,
                   gpu_memory_utilization=spec.gpu_memory_utilization, max_lora_rank=spec.max_lora_rank)

    # ------------------------------------------------------------------ plumbing

    def render(self, prompt: ChatPrompt) -> str:
        return render_chat(self.tokenizer, prompt)

    def count_tokens(self, text: str) -> int:
        return len(self._ids(text))

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _run(self, token_lists: Sequence[list[int]], params) -> list:
        from vllm.inputs import TokensPrompt

        for ids in token_lists:
            need = len(ids) + (params.max_tokens or 0)
            if need > self.context:
                raise BackendError(f"prompt of {len(ids)} tokens + {params.max_tokens} new tokens exceeds the "
                                   f"{self.context}-token context of {self.model_id}; lower cascade.view.max_tokens")
        prompts = [TokensPrompt(prompt_token_ids=list(ids)) for ids in token_lists]
        try:
            return self.engine.llm.generate(prompts, params, lora_request=self._lora, use_tqdm=False)
        except Exception as e:  # the engine's own errors: one kind to the cascade
            raise BackendError(f"vLLM generation failed on {self.model_id}: {e}") from e

    def _params(self, max_tokens: int, *, stop: Sequence[str] = (), temperature: float = 0.0, logprobs: int | None = None,
                prompt_logprobs: int | None = None, frequency_penalty: float = 0.0):
        from vllm import SamplingParams

        return SamplingParams(max_tokens=max_tokens, temperature=temperature, stop=list(stop) or None,
                              include_stop_str_in_output=True, logprobs=logprobs, prompt_logprobs=prompt_logprobs,
                              frequency_penalty=frequency_penalty, skip_special_tokens=True)

    # ------------------------------------------------------------------ the stage interface

    def generate(self, prompts: Sequence[ChatPrompt], params: GenerationParams) -> list[Generation]:
        if not prompts:
            return []
        sp = self._params(params.max_new_tokens, stop=params.stop, temperature=params.temperature,
                          logprobs=0 if params.logprobs else None)
        outs = self._run([self._ids(self.render(p)) for p in prompts], sp)
        results = []
        for o in outs:
            c = o.outputs[0]
            tokens = []
            if c.logprobs:
                for tid, lp in zip(c.token_ids, c.logprobs, strict=False):
                    entry = lp.get(tid)
                    if entry is not None:
                        tokens.append(TokenLogprob(entry.decoded_token or "", float(entry.logprob)))
            text = c.text
            cuts = [text.find(s) + len(s) for s in params.stop if s in text]
            if cuts:
                text = text[: min(cuts)]
            results.append(Generation(text, tuple(tokens), len(o.prompt_token_ids or ()), len(c.token_ids),
                                      "length" if c.finish_reason == "length" else "stop"))
        return results

    def label_tokens(self, prefill: str, labels: Sequence[str] = VERDICTS) -> list[int]:
        return label_first_tokens(self.tokenizer, prefill, labels, self.model_id)

    def score(self, prompts: Sequence[ChatPrompt], labels: Sequence[str] = VERDICTS) -> list[float]:
        """P(last label) per prompt from the first generated position's top log-probabilities,
        renormalised over the labels' first tokens (a label outside the top: the lowest shown)."""
        if not prompts:
            return []
        if len({p.prefill for p in prompts}) != 1:
            raise BackendError("score() needs one prefill per batch")
        label_ids = self.label_tokens(prompts[0].prefill, labels)
        outs = self._run([self._ids(self.render(p)) for p in prompts], self._params(1, logprobs=TOP_LOGPROBS))
        probs = []
        for o in outs:
            top = {tid: float(lp.logprob) for tid, lp in (o.outputs[0].logprobs or [{}])[0].items()}
            probs.append(label_probability(top, label_ids))
        return probs

    @contextmanager
    def transcript(self, prompt: ChatPrompt, budget: int) -> Iterator[VLLMTranscript]:
        yield VLLMTranscript(self, self.render(prompt))


class VLLMTranscript(TextTranscript):
    """``rlog.backends.base.Transcript`` on the vLLM engine; the text is the state (prefix caching
    keeps the engine from paying for it again)."""

    def choose(self, choices: Sequence[str], end: str = "") -> list[float]:
        """P(choice + end) renormalised over the choices, from the prompt log-probabilities of each
        continuation: the tokens past where it leaves the transcript's own tokens (as the
        transformers transcript counts them)."""
        if not choices:
            return []
        b = self._b
        self.steps += 1
        base = b._ids(self.text)
        rows = [b._ids(self.text + c + end) for c in choices]
        outs = b._run(rows, b._params(1, prompt_logprobs=0))
        totals = []
        for ids, o in zip(rows, outs, strict=True):
            k = max(common_prefix(ids, base), 1)
            plp = o.prompt_logprobs or []
            total = 0.0
            for i in range(k, len(ids)):
                entry = plp[i].get(ids[i]) if i < len(plp) and plp[i] else None
                if entry is None:
                    raise BackendError(f"vLLM gave no prompt log-probability for token {i} of a choice")
                total += float(entry.logprob)
            totals.append(total)
        return renormalised(totals)

    def generate(self, max_new_tokens: int, stop: Sequence[str] = (), repetition_penalty: float = 1.0,
                 no_repeat_ngram: int = 0) -> tuple[str, str]:
        """Greedy text until a stop string (left out), EOS or the budget; the engine's
        ``frequency_penalty`` (on generated tokens only) stands in for the repetition penalty."""
        b = self._b
        self.steps += 1
        sp = b._params(max_new_tokens, stop=stop, frequency_penalty=max(0.0, repetition_penalty - 1.0))
        o = b._run([b._ids(self.text)], sp)[0].outputs[0]
        return self._written(o.text, "length" if o.finish_reason == "length" else "stop", stop)
