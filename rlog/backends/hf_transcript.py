"""A transcript on a transformers model: one assistant turn written step by step on one KV cache.

The structured explanation alternates forced text (``category:``), scored choices and short
generations. Re-rendering the whole prompt for each step would pay for the prompt every
time; instead the cache of everything written so far is kept, and each step pays only for
its own tokens. The text is the source of truth: after every step it is re-tokenised as a
whole and the cache is cut back to the first token where the tokenisation changed, so
forced text and generated text join exactly as the model reads them in one piece (BPE
merges across a boundary are not lost). Invariant: the cache holds every token but the
last, whose logits the next step computes.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

from rlog.backends.base import BackendError
from rlog.contract.prompts import ChatPrompt


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class HFTranscript:
    """Made by ``TransformersBackend.transcript`` (which holds the model's lock while it lives)."""

    def __init__(self, backend, prompt: ChatPrompt, budget: int) -> None:
        from transformers import DynamicCache

        self._b = backend
        self._torch = backend._torch
        self.text = backend.render(prompt)
        ids = self._tokens(self.text)
        window = getattr(backend.model.config, "max_position_embeddings", None)
        if window and len(ids) + budget > window:
            raise BackendError(f"prompt of {len(ids)} tokens + {budget} to write exceeds the {window}-token context "
                               f"of {backend.model_id}; lower cascade.view.max_tokens or the explain budgets")
        prefix_ids, cache = backend._prefix_cache(prompt)
        if cache is not None and ids[: len(prefix_ids)] == prefix_ids:
            self._cache, self._cached = copy.deepcopy(cache), list(prefix_ids)
        else:
            self._cache, self._cached = DynamicCache(), []
        self._ids: list[int] = []
        self.steps = 0  # forward passes made (a cost figure)
        self._sync(self.text)

    # ------------------------------------------------------------------ plumbing

    def _tokens(self, text: str) -> list[int]:
        return self._b.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _forward(self, ids: Sequence[int]):
        """Feed ``ids`` after the cached tokens; their next-token logits (float32, one row each)."""
        torch = self._torch
        self.steps += 1
        try:
            out = self._b.model(input_ids=torch.tensor([list(ids)], device=self._b.device),
                                past_key_values=self._cache, use_cache=True)
        except (RuntimeError, IndexError, ValueError) as e:
            raise BackendError(f"transcript step failed on {self._b.model_id}: {e}") from e
        self._cache = out.past_key_values
        self._cached.extend(ids)
        return out.logits[0].float()

    def _crop(self, n: int) -> None:
        if n < len(self._cached):
            self._cache.crop(n - len(self._cached))  # a negative crop drops that many tokens from the end
            del self._cached[n:]

    def _sync(self, text: str) -> None:
        """Make ``text`` the transcript: the cache keeps what still tokenises the same, then holds all but the last."""
        ids = self._tokens(text)
        if not ids:
            raise BackendError("a transcript cannot be empty")
        self._crop(min(_common_prefix(ids, self._cached), len(ids) - 1))
        if len(self._cached) < len(ids) - 1:
            self._forward(ids[len(self._cached): len(ids) - 1])
        self._ids, self.text = ids, text

    # ------------------------------------------------------------------ steps

    def extend(self, text: str) -> None:
        self._sync(self.text + text)

    def reset(self, text: str) -> None:
        self._sync(text)

    def choose(self, choices: Sequence[str], end: str = "") -> list[float]:
        """P(choice + end) after the text, renormalised over ``choices`` (one short pass per choice).

        ``end`` closes a choice (a newline after a field's value), so a word is scored as a
        whole word, not as the prefix of a longer one. The transcript is left as it was.
        """
        torch = self._torch
        if not choices:
            return []
        base_cached = len(self._cached)
        totals = []
        for c in choices:
            ids = self._tokens(self.text + c + end)
            k = max(_common_prefix(ids, self._ids), 1)
            if k >= len(ids):
                raise BackendError(f"choice {c!r} adds no token after the transcript")
            start = k - 1  # the logits at start predict ids[k], the choice's first own token
            self._crop(start)
            logits = self._forward(ids[start: len(ids) - 1])
            logp = torch.log_softmax(logits, dim=-1)
            totals.append(float(sum(logp[i, ids[start + 1 + i]] for i in range(len(ids) - 1 - start))))
            self._crop(start)
            if len(self._cached) < base_cached:
                self._forward(self._ids[len(self._cached): base_cached])
        top = max(totals)
        weights = [math.exp(t - top) for t in totals]
        z = sum(weights)
        return [w / z for w in weights]

    def generate(self, max_new_tokens: int, stop: Sequence[str] = (), repetition_penalty: float = 1.0,
                 no_repeat_ngram: int = 0) -> tuple[str, str]:
        """Greedy text after the transcript, until a stop string (left out), EOS or the budget.

        ``repetition_penalty`` (CTRL-style) and ``no_repeat_ngram`` apply to this
        generation's own tokens: a small model's loops are what they break, while copying a
        log line's words from the prompt stays allowed. Returns (text, finish) with finish
        "stop" or "length"; the text joins the transcript.
        """
        torch = self._torch
        tok = self._b.tokenizer
        eos = tok.eos_token_id
        gen: list[int] = []
        base = self.text
        text, finish = "", "length"
        pending = self._ids[-1]
        for _ in range(max_new_tokens):
            logits = self._forward([pending])[-1]
            if gen and repetition_penalty != 1.0:
                seen = torch.tensor(sorted(set(gen)), device=logits.device)
                vals = logits[seen]
                logits[seen] = torch.where(vals > 0, vals / repetition_penalty, vals * repetition_penalty)
            if no_repeat_ngram > 1 and len(gen) >= no_repeat_ngram - 1:
                head = tuple(gen[len(gen) - no_repeat_ngram + 1:])
                for i in range(len(gen) - no_repeat_ngram + 1):
                    if tuple(gen[i: i + no_repeat_ngram - 1]) == head:
                        logits[gen[i + no_repeat_ngram - 1]] = float("-inf")
            nxt = int(torch.argmax(logits))
            if nxt == eos:
                finish = "stop"
                break
            gen.append(nxt)
            pending = nxt
            text = tok.decode(gen, skip_special_tokens=True)
            cuts = [i for i in (text.find(s) for s in stop) if i >= 0]
            if cuts:
                text, finish = text[: min(cuts)], "stop"
                break
        self._ids = self._ids + gen
        self._sync(base + text)
        return text, finish
