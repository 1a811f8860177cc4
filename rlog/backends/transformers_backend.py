"""transformers engine: the CPU default, batched generation and one-pass verdict scoring.

Generation: left-padded batches, stop strings (the fast model stops at ``</answer>``) and
per-token log-probabilities in one ``generate`` call.

Transcripts (R-Log's structured explanation): one assistant turn written in steps on one
key/value cache, forced text, scored choices and short generations in turn.

Scoring (R-Log-fast): the answer comes first, so the verdict is the first token after the
``<answer>`` prefill. ``score`` reads P(abnormal) from that position's logits in one batched
forward pass, with no decoding. The instructions that open every prompt are identical, so
their key/value cache is computed once and reused: each call pays only for the session.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rlog.backends.base import BackendError, Generation, GenerationParams, label_first_tokens
from rlog.config import ModelSpec
from rlog.contract.answers import TokenLogprob
from rlog.contract.prompts import VERDICTS, ChatPrompt, defang_tokens
from rlog.models import Calibration, load_calibration, resolve_adapter, resolve_model

log = logging.getLogger(__name__)


def added_tokens(tokenizer) -> tuple[str, ...]:
    """The strings ``tokenizer`` reads as one special or added token, longest first."""
    dec = getattr(tokenizer, "added_tokens_decoder", None) or {}
    found = {t.content for t in dec.values()} | set(getattr(tokenizer, "all_special_tokens", None) or ())
    return tuple(sorted((t for t in found if t), key=len, reverse=True))


def render_chat(tokenizer, prompt: ChatPrompt) -> str:
    """The exact text the model sees: its own chat template, then the assistant prefill.

    The data messages (all but the system's) have this tokenizer's own added tokens taken
    apart first: a log line holding ``<file_sep>`` would otherwise reach the model as that
    one token, whatever the generic defanging knows of."""
    tokens = added_tokens(tokenizer)
    messages = [m if m["role"] == "system" else {**m, "content": defang_tokens(m["content"], tokens)}
                for m in prompt.messages]
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


def pick_dtype(name: str, device: str):
    """The torch dtype for ``name``; ``auto`` is bfloat16 where the hardware runs it natively
    (about 3x faster than float32 on a CPU with AVX512-BF16 or AMX), else float32."""
    import torch

    if name == "float32":
        return torch.float32
    if name == "bfloat16":
        return torch.bfloat16
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    try:
        native = device == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native = False
    return torch.bfloat16 if native else torch.float32


class TransformersBackend:
    """One stage's view of a loaded model: its adapter's weights, its calibration, its prompt cache.

    Stages on the same base, device and precision share one loaded model
    (``rlog.backends.shared_model``): R-Log-fast and R-Log cost one model's memory, plus
    the weights their adapters touch.
    """

    def __init__(self, model_path: str | Path, *, adapter: str | Path | None = None, device: str = "cpu",
                 model_id: str | None = None, dtype: str = "auto", share: bool = True) -> None:
        try:
            import torch
        except ImportError as e:  # pragma: no cover - core dependency
            raise BackendError(f"transformers backend unavailable: {e}") from None
        from rlog.backends.shared_model import BASE, SharedModel, adapter_shares, shared_model

        self._torch = torch
        path = Path(model_path)
        adapter = resolve_adapter(adapter)  # checked before the (slow) model load
        self.dtype = pick_dtype(dtype, device)
        if adapter is not None and not adapter_shares(adapter):
            log.info("%s is not plain LoRA: merged into a model of its own", adapter)
            self.shared, self._key = SharedModel(path, device, self.dtype, merge=adapter), BASE
        else:
            self.shared = shared_model(path, device, self.dtype) if share else SharedModel(path, device, self.dtype)
            self._key = self.shared.add_adapter(adapter) if adapter is not None else BASE
        self.tokenizer = self.shared.tokenizer
        self.device = device
        self.model_id = model_id or (path.name + (f"+{Path(adapter).name}" if adapter else ""))
        # The calibration fits these weights read at this precision: it sits beside the adapter, or in
        # a merged model's folder.
        self.precision = str(self.dtype).removeprefix("torch.")
        self.calibration: Calibration | None = load_calibration(adapter if adapter is not None else path,
                                                                self.precision)
        cal = self.calibration
        if cal is not None and cal.precision and cal.precision != self.precision:
            log.warning("%s: its calibration was fitted on %s scores and this backend reads %s; bfloat16 scores "
                        "run a few points above float32, so sessions near the threshold may change verdict. "
                        "Fit one for %s: rlog train calibrate --adapter %s --dtype %s", self.model_id, cal.precision,
                        self.precision, self.precision, adapter if adapter is not None else path, self.precision)
        self._prefix: tuple[str, list[int], object] | None = None  # (text, token ids, key/value cache)
        self.prefix_hits = 0  # prompts scored on the cached instructions
        if device == "cpu" and torch.get_num_threads() < (os.cpu_count() or 1):
            torch.set_num_threads(os.cpu_count() or 1)

    @property
    def model(self):
        """The loaded model. Its weights are this stage's only inside ``held()``."""
        return self.shared.model

    @contextmanager
    def held(self) -> Iterator[None]:
        """The model with this stage's weights in place, to this caller alone, without autograd."""
        with self.shared.use(self._key), self._torch.inference_mode():
            yield

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> TransformersBackend:
        path = resolve_model(spec.model)
        name = spec.model if not Path(spec.model).exists() else Path(spec.model).name
        adapter = resolve_adapter(spec.adapter)
        mid = name + (f"+{adapter.name}" if adapter else "")
        return cls(path, adapter=adapter, device=spec.device, model_id=mid, dtype=spec.dtype)

    def render(self, prompt: ChatPrompt) -> str:
        return render_chat(self.tokenizer, prompt)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` as it sits inside a chat turn (what prompt caps are measured in)."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # ------------------------------------------------------------------ step-by-step answers

    @contextmanager
    def transcript(self, prompt: ChatPrompt, budget: int) -> Iterator:
        """An assistant turn on ``prompt`` to write step by step (``rlog.backends.hf_transcript``),
        with the model to itself while it lasts; ``budget``: tokens it may still write."""
        from rlog.backends.hf_transcript import HFTranscript

        with self.held():
            yield HFTranscript(self, prompt, budget)

    # ------------------------------------------------------------------ one-pass scoring

    def label_tokens(self, prefill: str, labels: Sequence[str] = VERDICTS) -> list[int]:
        """The first token of each label as generated right after ``prefill``."""
        return label_first_tokens(self.tokenizer, prefill, labels, self.model_id)

    def _instructions(self, prompt: ChatPrompt) -> str:
        """The rendered text before the session: the same for every prompt with these instructions."""
        probe = ChatPrompt((*prompt.messages[:-1], {**prompt.messages[-1], "content": "\x00"}), prompt.prefill)
        text = self.render(probe)
        return text[: text.index("\x00")] if "\x00" in text else ""

    def _prefix_cache(self, prompt: ChatPrompt):
        """(token ids, key/value cache) of the instructions, computed once per distinct text (called
        inside ``held()``: the cache is of this stage's weights)."""
        torch = self._torch
        text = self._instructions(prompt)
        if self._prefix is not None and self._prefix[0] == text:
            return self._prefix[1], self._prefix[2]
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
        if len(ids) < 2:
            return [], None
        with torch.inference_mode():
            out = self.model(input_ids=torch.tensor([ids], device=self.device), use_cache=True)
        self._prefix = (text, ids, out.past_key_values)
        return ids, out.past_key_values

    def score(self, prompts: Sequence[ChatPrompt], labels: Sequence[str] = VERDICTS) -> list[float]:
        """P(last label) per prompt: the next-token distribution after the prompt, renormalised over
        the labels' first tokens. For the fast contract, P(abnormal) in one forward pass."""
        if not prompts:
            return []
        torch, tok = self._torch, self.tokenizer
        if len({p.prefill for p in prompts}) != 1:
            raise BackendError("score() needs one prefill per batch")
        label_ids = self.label_tokens(prompts[0].prefill, labels)
        texts = [self.render(p) for p in prompts]
        rows = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
        window = getattr(self.model.config, "max_position_embeddings", None)
        longest = max(len(r) for r in rows)
        if window and longest > window:
            raise BackendError(f"prompt of {longest} tokens exceeds the {window}-token context of {self.model_id}; "
                               "lower cascade.view.max_tokens")
        with self.held():
            prefix_ids, cache = self._prefix_cache(prompts[0])
            n = len(prefix_ids)
            if cache is None or any(r[:n] != prefix_ids for r in rows):
                n, cache = 0, None  # a prompt with other instructions: no reuse for this batch
            suffix = [r[n:] for r in rows]
            width = max(len(r) for r in suffix)
            pad = tok.pad_token_id
            ids = torch.tensor([[pad] * (width - len(r)) + r for r in suffix], device=self.device)
            smask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in suffix], device=self.device)
            mask = torch.cat([torch.ones(len(rows), n, dtype=smask.dtype, device=self.device), smask], dim=1)
            pos = (n + smask.cumsum(1) - 1).clamp(min=n)
            kwargs = {}
            if cache is not None:
                cache = copy.deepcopy(cache)
                cache.batch_repeat_interleave(len(rows))
                kwargs["past_key_values"] = cache
                self.prefix_hits += len(rows)
            try:
                out = self._decoder(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=cache is not None,
                                    **kwargs)
            except (RuntimeError, IndexError, ValueError) as e:
                raise BackendError(f"scoring failed on {self.model_id}: {e}") from e
            probs = torch.softmax(self._label_logits(out.last_hidden_state[:, -1, :], label_ids), dim=-1)[:, -1]
        return [float(p) for p in probs]

    @property
    def _decoder(self):
        """The transformer under the language-model head (its output is the final hidden state)."""
        return getattr(self.model, self.model.base_model_prefix)

    def _label_logits(self, hidden, label_ids: list[int]):
        """The labels' logits, in float32 from the head's rows of those labels only.

        Computed in bfloat16, logits around 20 keep steps of 0.125–0.25, so P(abnormal) would
        take a handful of values (0.269, 0.321, 0.378, …) and rank sessions in coarse ties;
        the softmax over the labels equals the full softmax renormalised over them.
        """
        head = self.model.get_output_embeddings()
        rows = head.weight[label_ids].float()
        logits = hidden.float() @ rows.T
        if getattr(head, "bias", None) is not None:
            logits = logits + head.bias[label_ids].float()
        return logits

    def generate(self, prompts: Sequence[ChatPrompt], params: GenerationParams) -> list[Generation]:
        if not prompts:
            return []
        tok = self.tokenizer
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
                               f"the {window}-token context of {self.model_id}; lower cascade.view.max_tokens "
                               "or max_new_tokens, or use a model with a longer context")
        with self.held():
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
