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
from collections.abc import Sequence

from rlog.backends.base import BackendError, common_prefix, renormalised
from rlog.contract.prompts import ChatPrompt


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

    def _forward(self, ids: Sequence[int], logits: bool = True):
        """Feed ``ids`` after the cached tokens; their next-token logits (float32, one row each).

        ``logits=False`` runs the decoder without the language-model head: a prompt's
        prefill needs only its cache, and the head (49k vocabulary rows) on every prompt
        position would cost a fifth of the pass.
        """
        torch = self._torch
        self.steps += 1
        b = self._b
        try:
            x = torch.tensor([list(ids)], device=b.device)
            if logits:
                out = b.model(input_ids=x, past_key_values=self._cache, use_cache=True)
            else:
                out = b._decoder(input_ids=x, past_key_values=self._cache, use_cache=True)
        except (RuntimeError, IndexError, ValueError) as e:
            raise BackendError(f"transcript step failed on {b.model_id}: {e}") from e
        self._cache = out.past_key_values
        self._cached.extend(ids)
        return out.logits[0].float() if logits else None

    def _crop(self, n: int) -> None:
        if n < len(self._cached):
            self._cache.crop(n - len(self._cached))  # a negative crop drops that many tokens from the end
            del self._cached[n:]

    def _sync(self, text: str) -> None:
        """Make ``text`` the transcript: the cache keeps what still tokenises the same, then holds all but the last."""
        ids = self._tokens(text)
        if not ids:
            raise BackendError("a transcript cannot be empty")
        self._crop(min(common_prefix(ids, self._cached), len(ids) - 1))
        if len(self._cached) < len(ids) - 1:
            self._forward(ids[len(self._cached): len(ids) - 1], logits=False)
        self._ids, self.text = ids, text

    # ------------------------------------------------------------------ steps

    def extend(self, text: str) -> None:
        self._sync(self.text + text)

    def reset(self, text: str) -> None:
        self._sync(text)

    def choose(self, choices: Sequence[str], end: str = "") -> list[float]:
        """P(choice + end) after the text, renormalised over ``choices``, in one pass.

        ``end`` closes a choice (a newline after a field's value), so a word is scored as a
        whole word, not as the prefix of a longer one. The choices are fed as one sequence,
        side by side after the cached text: each token sits at its own position in its
        choice and an attention mask lets it see the cache and its own choice's earlier
        tokens only (a tree of continuations). So the weights are read once for all the
        choices, which is what a CPU step costs, and the cache is never copied (eight
        categories: one pass over ~24 tokens, not eight cache copies). The transcript is
        left as it was.
        """
        torch = self._torch
        if not choices:
            return []
        rows = []
        for c in choices:
            ids = self._tokens(self.text + c + end)
            k = max(common_prefix(ids, self._ids), 1)
            if k >= len(ids):
                raise BackendError(f"choice {c!r} adds no token after the transcript")
            rows.append((ids, k - 1))  # the logits at k - 1 predict ids[k], the choice's first own token
        base_cached = len(self._cached)
        s0 = min(start for _, start in rows)  # where the first choice leaves the cached text
        self._crop(s0)
        feed: list[int] = []
        pos: list[int] = []
        owner: list[int] = []
        for r, (ids, _) in enumerate(rows):
            f = ids[s0: len(ids) - 1]
            feed += f
            pos += range(s0, s0 + len(f))
            owner += [r] * len(f)
        b = self._b
        own = torch.tensor(owner, device=b.device)
        at = torch.tensor(pos, device=b.device)
        sees = (own[:, None] == own[None, :]) & (at[None, :] <= at[:, None])  # same choice, not later
        mask = torch.cat([torch.ones(len(feed), s0, dtype=torch.bool, device=b.device), sees], dim=1)
        self.steps += 1
        try:
            out = b.model(input_ids=torch.tensor([feed], device=b.device), position_ids=at[None],
                          attention_mask=mask[None, None], past_key_values=self._cache, use_cache=True)
        except (RuntimeError, IndexError, ValueError) as e:
            raise BackendError(f"transcript step failed on {b.model_id}: {e}") from e
        self._cache = out.past_key_values
        self._cache.crop(-len(feed))  # the choices leave the cache as it was at s0
        logp = torch.log_softmax(out.logits[0].float(), dim=-1)
        totals = []
        off = 0
        for ids, start in rows:
            first = off + start - s0
            totals.append(float(sum(logp[first + i, ids[start + 1 + i]] for i in range(len(ids) - 1 - start))))
            off += len(ids) - 1 - s0
        del out, logp
        if len(self._cached) < base_cached:
            self._forward(self._ids[len(self._cached): base_cached], logits=False)
        return renormalised(totals)

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
