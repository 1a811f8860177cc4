"""transformers engine: the CPU default, batched greedy or sampled generation.

Left-padded batches, stop strings (the fast model stops at ``</answer>``) and per-token
log-probabilities (verdict confidence) in one ``generate`` call.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from rlog.backends.base import BackendError, Generation, GenerationParams
from rlog.config import ModelSpec
from rlog.contract.answers import TokenLogprob
from rlog.contract.prompts import ChatPrompt
from rlog.models import resolve_adapter, resolve_model

log = logging.getLogger(__name__)


def render_chat(tokenizer, prompt: ChatPrompt) -> str:
    """The exact text the model sees: its own chat template, then the assistant prefill."""
    messages = list(prompt.messages)
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:  # a bare tokenizer (tiny test models): a plain, unambiguous layout
        text = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages) + "<|assistant|>\n"
    return text + prompt.prefill


def _token_pieces(tokenizer, ids: list[int]) -> list[str]:
    """Per-token texts that concatenate exactly to the decoded completion when possible."""
    pieces, prev = [], ""
    for k in range(len(ids)):
        cum = tokenizer.decode(ids[: k + 1], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        pieces.append(cum[len(prev):] if cum.startswith(prev) else cum[len(os.path.commonprefix([cum, prev])):])
        prev = cum
    return pieces


class TransformersBackend:
    def __init__(self, model_path: str | Path, *, adapter: str | Path | None = None, device: str = "cpu",
                 model_id: str | None = None) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as e:  # pragma: no cover - core dependency
            raise BackendError(f"transformers backend unavailable: {e}") from None
        self._torch = torch
        path = Path(model_path)
        adapter = resolve_adapter(adapter)  # checked before the (slow) model load
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        except (OSError, ValueError) as e:
            raise BackendError(f"cannot load model from {path}: {e}") from None
        if adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"
        self.model = model.to(device).eval()
        self.device = device
        self.model_id = model_id or (path.name + (f"+{Path(adapter).name}" if adapter else ""))
        self._lock = threading.Lock()
        if device == "cpu" and torch.get_num_threads() < (os.cpu_count() or 1):
            torch.set_num_threads(os.cpu_count() or 1)

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> TransformersBackend:
        path = resolve_model(spec.model)
        name = spec.model if not Path(spec.model).exists() else Path(spec.model).name
        adapter = resolve_adapter(spec.adapter)
        mid = name + (f"+{adapter.name}" if adapter else "")
        return cls(path, adapter=adapter, device=spec.device, model_id=mid)

    def render(self, prompt: ChatPrompt) -> str:
        return render_chat(self.tokenizer, prompt)

    def generate(self, prompts: Sequence[ChatPrompt], params: GenerationParams) -> list[Generation]:
        if not prompts:
            return []
        torch, tok = self._torch, self.tokenizer
        texts = [self.render(p) for p in prompts]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        kwargs = dict(max_new_tokens=params.max_new_tokens, return_dict_in_generate=True,
                      output_scores=params.logprobs, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        if params.temperature > 0:
            kwargs.update(do_sample=True, temperature=params.temperature, top_k=0, top_p=1.0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=tok)
        window = getattr(self.model.config, "max_position_embeddings", None) or getattr(self.model.config,
                                                                                         "n_positions", None)
        need = enc["input_ids"].shape[1] + params.max_new_tokens
        if window and need > window:
            raise BackendError(f"prompt of {enc['input_ids'].shape[1]} tokens + {params.max_new_tokens} new tokens exceeds "
                               f"the {window}-token context of {self.model_id}; lower cascade.max_prompt_templates "
                               "or max_new_tokens, or use a model with a longer context")
        with self._lock, torch.inference_mode():
            try:
                out = self.model.generate(**enc, **kwargs)
            except (RuntimeError, IndexError, ValueError) as e:
                raise BackendError(f"generation failed on {self.model_id}: {e}") from e
            scores = None
            if params.logprobs:
                scores = self.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
        prompt_len = enc["input_ids"].shape[1]
        results = []
        for i in range(len(prompts)):
            gen = out.sequences[i, prompt_len:].tolist()
            n = len(gen)
            # generate() pads rows that stopped early; a row shorter than the budget stopped.
            finish = "length" if n >= params.max_new_tokens else "stop"
            for j, t in enumerate(gen):
                if t == tok.eos_token_id or (t == tok.pad_token_id and t != tok.eos_token_id and j > 0
                                             and all(x == t for x in gen[j:])):
                    n, finish = j, "stop"
                    break
            ids = gen[:n]
            pieces = _token_pieces(tok, ids)
            text = "".join(pieces)
            for s in params.stop:
                cut = text.find(s)
                if cut >= 0:
                    text, finish = text[: cut + len(s)], "stop"
            lps = scores[i, :n].tolist() if scores is not None else []
            tokens, pos = [], 0
            for piece, lp in zip(pieces, lps, strict=False):
                if pos >= len(text):
                    break
                piece = piece[: len(text) - pos]
                tokens.append(TokenLogprob(piece, float(lp)))
                pos += len(piece)
            mask = enc["attention_mask"][i]
            results.append(Generation(text, tuple(tokens), int(mask.sum()), len(ids), finish))
        return results
