"""The interface every inference engine implements (transformers on CPU, vLLM on GPU)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from rlog.contract.answers import TokenLogprob
from rlog.contract.prompts import ChatPrompt
from rlog.errors import RlogError


class BackendError(RlogError, RuntimeError):
    """The engine failed to load or to generate; the message says what to check."""


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 64
    temperature: float = 0.0
    stop: tuple[str, ...] = ()
    logprobs: bool = True


@dataclass(frozen=True)
class Generation:
    """One completion: text after the prefill, per-token log-probs, and cost figures."""

    text: str
    tokens: tuple[TokenLogprob, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"  # "stop" (EOS or stop string) or "length"
    extra: dict = field(default_factory=dict)


class Backend(Protocol):
    """Batched chat generation. Implementations render prompts with the model's own template."""

    model_id: str

    def generate(self, prompts: Sequence[ChatPrompt], params: GenerationParams) -> list[Generation]: ...


class Transcript(Protocol):
    """An assistant turn being written step by step on one prompt, the model's state kept between steps.

    What the structured explanation needs (``rlog.cascade.explain``): forced text between
    the model's parts (the answer's keys), a choice among fixed strings scored in one pass
    each, and short greedy generations with stop strings. ``text`` is everything so far,
    the rendered prompt included.
    """

    text: str

    def extend(self, text: str) -> None: ...

    def reset(self, text: str) -> None: ...

    def choose(self, choices: Sequence[str], end: str = "") -> list[float]: ...

    def generate(self, max_new_tokens: int, stop: Sequence[str] = (), repetition_penalty: float = 1.0,
                 no_repeat_ngram: int = 0) -> tuple[str, str]: ...


def can_score(backend) -> bool:
    """Whether ``backend`` reads label probabilities in one pass (``score``): the transformers backend
    always, a model server only when it gives log-probabilities (its ``scores``)."""
    return callable(getattr(backend, "score", None)) and bool(getattr(backend, "scores", True))


def label_probability(top: Mapping, labels: Sequence) -> float:
    """P(last label) renormalised over ``labels`` from one position's top log-probabilities (keyed by
    token id or token text, as the engine names them); a label outside the top gets the lowest
    shown (an upper bound: a trained R-Log-fast puts both verdicts on top)."""
    floor = min(top.values()) if top else -100.0
    lps = [float(top.get(k, floor)) for k in labels]
    m = max(lps)
    w = [math.exp(x - m) for x in lps]
    return w[-1] / sum(w)


def common_prefix(a: Sequence, b: Sequence) -> int:
    """Length of the common prefix of two token sequences."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def label_first_tokens(tokenizer, prefill: str, labels: Sequence[str], model_id: str) -> list[int]:
    """The first token of each label as generated right after ``prefill`` (how a one-pass scorer reads
    a label's probability); distinct, or ``BackendError``."""
    base = tokenizer(prefill, add_special_tokens=False)["input_ids"]
    out = []
    for label in labels:
        ids = tokenizer(prefill + label, add_special_tokens=False)["input_ids"]
        rest = ids[len(base):] if ids[: len(base)] == base else tokenizer(label, add_special_tokens=False)["input_ids"]
        if not rest:
            raise BackendError(f"label {label!r} has no tokens after {prefill!r} in {model_id}'s tokenizer")
        out.append(rest[0])
    if len(set(out)) != len(out):
        raise BackendError(f"labels {list(labels)} share a first token in {model_id}'s tokenizer: they cannot "
                           "be scored in one pass (set cascade.scoring: generate)")
    return out


def renormalised(logps: Sequence[float]) -> list[float]:
    """Probabilities from log-probabilities, renormalised over them alone (a choice among fixed strings)."""
    top = max(logps)
    weights = [math.exp(x - top) for x in logps]
    z = sum(weights)
    return [w / z for w in weights]


class TextTranscript:
    """A ``Transcript`` whose whole state is its text, for engines that take the text again on every
    step (a model server, vLLM: their prefix caches keep them from paying for it twice)."""

    def __init__(self, backend, text: str) -> None:
        self._b = backend
        self.text = text
        self.steps = 0  # requests made (a cost figure)

    def extend(self, text: str) -> None:
        self.text += text

    def reset(self, text: str) -> None:
        self.text = text

    def _written(self, text: str, finish: str, stop: Sequence[str]) -> tuple[str, str]:
        """A generation joined to the transcript, cut before its first stop string."""
        cuts = [text.find(s) for s in stop if s in text]
        if cuts:
            text, finish = text[: min(cuts)], "stop"
        self.text += text
        return text, finish
