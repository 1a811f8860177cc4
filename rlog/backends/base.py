"""The interface every inference engine implements (transformers on CPU, vLLM on GPU)."""

from __future__ import annotations

from collections.abc import Sequence
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
