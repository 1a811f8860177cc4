"""A model server that speaks the OpenAI completions API: ``vllm serve``, ``transformers serve``, …

Platform teams run their own model servers; this backend makes rlog one more client. The
prompt is rendered here, with the model's own chat template from a local tokenizer (the
``model`` of the stage), and sent as raw text to ``/v1/completions``: the server sees
byte for byte what the transformers backend feeds its model (the assistant prefill
included, which chat endpoints cannot continue), and prompt caps are counted in the
same tokens.

- One async HTTP client on a private event loop: pooled keep-alive connections, a
  timeout per request, at most ``concurrency`` requests in flight; the cascade calls it
  from its worker threads as a plain blocking call.
- A failed request is retried with backoff when the failure is transient (connection,
  timeout, 429, 5xx); then ``BackendError``, which the cascade retries and, past that,
  holds the batch (``stream.poison``). A 4xx is the request's fault: no retry.
- Start-up checks ``/v1/models``: the served name must be there, or the error names what
  is served and how to add it.
- Log-probabilities are used where the server gives them (vLLM): R-Log-fast is then
  scored in one pass (P(abnormal) over the verdicts' first tokens, from the top
  log-probabilities of one generated token) and R-Log's choices are scored from the
  prompt log-probabilities of each choice (``echo``). A server that refuses them (HTTP
  422/400 naming logprobs) or ignores them (``transformers serve``) is used text-only:
  R-Log-fast decodes its answer, and a choice is the server's own greedy pick.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rlog.backends.base import (
    BackendError,
    Generation,
    GenerationParams,
    TextTranscript,
    label_first_tokens,
    label_probability,
    renormalised,
)
from rlog.backends.transformers_backend import render_chat
from rlog.config import ModelSpec
from rlog.contract.answers import TokenLogprob
from rlog.contract.prompts import VERDICTS, ChatPrompt
from rlog.models import BUILTIN_ADAPTERS, Calibration, context_length, load_calibration, resolve_adapter, resolve_tokenizer

log = logging.getLogger(__name__)

TOP_LOGPROBS = 20  # vLLM's default cap on log-probabilities per position
_TRANSIENT = {408, 409, 425, 429, 500, 502, 503, 504}


class ServerError(BackendError):
    """The model server answered with an error status (``status``) or not at all (``status`` 0)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def served_name(spec: ModelSpec) -> str:
    """The model name to ask the server for: ``served_model``, else a built-in adapter's name (what
    ``vllm serve --lora-modules rlog-fast=…`` calls it), else the model."""
    if spec.served_model:
        return spec.served_model
    if spec.adapter and str(spec.adapter).strip().lower() in BUILTIN_ADAPTERS:
        return str(spec.adapter).strip().lower()
    if spec.adapter:
        return Path(str(spec.adapter)).name
    return spec.model


class _Loop:
    """An event loop on a daemon thread: the async client lives there, callers block on results."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="rlog-model-http", daemon=True)
        self._thread.start()

    def run(self, coro, timeout: float | None = None):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
        self.loop.close()


class OpenAIBackend:
    """One stage on an OpenAI-compatible server (see the module docstring)."""

    def __init__(self, base_url: str, served_model: str, tokenizer: str | Path, *, api_key: str | None = None,
                 timeout_s: float = 30.0, concurrency: int = 8, retries: int = 2, backoff_s: float = 0.25,
                 model_id: str | None = None, calibration: Calibration | None = None, precision: str = "bfloat16",
                 check: bool = True) -> None:
        import httpx
        from transformers import AutoTokenizer

        self.base_url = base_url.rstrip("/")
        self.served_model = served_model
        self.model_id = model_id or served_model
        self.timeout_s, self.concurrency, self.retries, self.backoff_s = timeout_s, concurrency, retries, backoff_s
        self.calibration, self.precision = calibration, precision
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(Path(tokenizer), trust_remote_code=False)
        except (OSError, ValueError) as e:
            raise BackendError(f"cannot load the tokenizer of {tokenizer} (the openai backend renders prompts "
                               f"with the model's own chat template): {e}") from None
        self.context = context_length(Path(tokenizer))
        self.logprobs: bool | None = None  # unknown until probed
        self.requests = 0  # HTTP requests made (a cost figure)
        self._io = _Loop()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

        async def make():
            limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
            return httpx.AsyncClient(base_url=self.base_url, headers=headers, limits=limits,
                                     timeout=httpx.Timeout(timeout_s)), asyncio.Semaphore(concurrency)

        self._client, self._sem = self._io.run(make())
        if check:
            try:
                self.check()
            except BaseException:
                self.close()
                raise

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> OpenAIBackend:
        if not spec.base_url:
            raise BackendError("backend 'openai' needs base_url: the server's OpenAI API root, e.g. http://vllm:8000/v1")
        key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
        adapter = resolve_adapter(spec.adapter)
        precision = spec.dtype if spec.dtype != "auto" else "bfloat16"  # what GPU servers run
        cal = load_calibration(adapter, precision) if adapter is not None else None
        name = served_name(spec)
        return cls(spec.base_url, name, resolve_tokenizer(spec.model), api_key=key, timeout_s=spec.timeout_s,
                   concurrency=spec.concurrency, retries=spec.request_retries, model_id=f"{name}@{spec.base_url}",
                   calibration=cal, precision=precision)

    def close(self) -> None:
        try:
            self._io.run(self._client.aclose(), 5)
        finally:
            self._io.close()

    # ------------------------------------------------------------------ HTTP

    async def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        """One request with retries on transient failures; the JSON body of the answer."""
        import httpx

        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            async with self._sem:
                self.requests += 1
                try:
                    r = await self._client.request(method, path, json=body)
                except httpx.HTTPError as e:
                    err: ServerError = ServerError(f"model server {self.base_url} unreachable or too slow "
                                                   f"({type(e).__name__}: {e or 'no detail'})")
                else:
                    if r.status_code < 400:
                        try:
                            return r.json()
                        except ValueError:
                            raise ServerError(f"model server {self.base_url}{path} answered non-JSON: "
                                              f"{r.text[:200]!r}", r.status_code) from None
                    err = ServerError(f"model server {self.base_url}{path} answered HTTP {r.status_code}: "
                                      f"{r.text[:300]}", r.status_code)
                    if r.status_code not in _TRANSIENT:
                        raise err
            if attempt == self.retries:
                raise err
            log.warning("%s (retry %d/%d in %.2fs)", err, attempt + 1, self.retries, delay)
            await asyncio.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def _call(self, coro):
        # a whole batch may wait behind `concurrency` requests, each with its own timeout and retries
        return self._io.run(coro)

    def _gather(self, bodies: Sequence[dict]) -> list[dict]:
        async def all_of():
            return await asyncio.gather(*(self._request("POST", "/completions", b) for b in bodies))

        return self._call(all_of())

    def check(self) -> None:
        """The server is up and serves this stage's model; probe whether it gives log-probabilities."""
        served = [m.get("id") for m in self._call(self._request("GET", "/models")).get("data", [])]
        if self.served_model not in served:
            raise BackendError(
                f"model server {self.base_url} does not serve {self.served_model!r} (it serves: "
                f"{', '.join(map(str, served)) or 'nothing'}). Start it with that name (vLLM: `vllm serve BASE "
                f"--enable-lora --lora-modules {self.served_model}=ADAPTER_DIR`), or set the stage's served_model")
        self.logprobs = self._probe_logprobs()
        log.info("model server %s serves %s (log-probabilities: %s)", self.base_url, self.served_model,
                 "yes" if self.logprobs else "no, text only")

    def _probe_logprobs(self) -> bool:
        body = {"model": self.served_model, "prompt": "ok", "max_tokens": 1, "temperature": 0, "logprobs": 2}
        try:
            out = self._call(self._request("POST", "/completions", body))
        except ServerError as e:
            if e.status in (400, 422) and "logprob" in str(e).lower():
                return False
            raise
        lp = (out.get("choices") or [{}])[0].get("logprobs")
        return bool(lp and lp.get("top_logprobs"))

    def _body(self, prompt: str, max_tokens: int, *, stop: Sequence[str] = (), temperature: float = 0.0,
              logprobs: int | None = None, **extra) -> dict:
        if self.context:
            n = self.count_tokens(prompt)
            if n + max_tokens > self.context:
                raise BackendError(f"prompt of {n} tokens + {max_tokens} new tokens exceeds the {self.context}-token "
                                   f"context of {self.model_id}; lower cascade.view.max_tokens or max_new_tokens")
        body = {"model": self.served_model, "prompt": prompt, "max_tokens": max_tokens, "temperature": temperature}
        if stop:
            body["stop"] = list(stop)
        if logprobs is not None and self.logprobs:
            body["logprobs"] = logprobs
        return {**body, **extra}

    # ------------------------------------------------------------------ the stage interface

    def render(self, prompt: ChatPrompt) -> str:
        return render_chat(self.tokenizer, prompt)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    @property
    def scores(self) -> bool:
        """Whether ``score`` can read probabilities (the server gives log-probabilities)."""
        return bool(self.logprobs)

    def generate(self, prompts: Sequence[ChatPrompt], params: GenerationParams) -> list[Generation]:
        if not prompts:
            return []
        bodies = [self._body(self.render(p), params.max_new_tokens, stop=params.stop, temperature=params.temperature,
                             logprobs=0 if params.logprobs else None) for p in prompts]
        return [self._generation(out, params.stop) for out in self._gather(bodies)]

    def _generation(self, out: dict, stop: Sequence[str]) -> Generation:
        return generation_of(out, stop, self.base_url)

    def label_pieces(self, prefill: str, labels: Sequence[str] = VERDICTS) -> list[str]:
        """Each label's first token after ``prefill``, as the text the server names it by."""
        return [self.tokenizer.decode([t]) for t in label_first_tokens(self.tokenizer, prefill, labels, self.model_id)]

    def score(self, prompts: Sequence[ChatPrompt], labels: Sequence[str] = VERDICTS) -> list[float]:
        """P(last label) per prompt, from the top log-probabilities of the first generated token,
        renormalised over the labels' first tokens. A label outside the top is given the lowest
        log-probability shown (an upper bound; a trained R-Log-fast puts both verdicts on top)."""
        if not prompts:
            return []
        if not self.logprobs:
            raise BackendError(f"model server {self.base_url} gives no log-probabilities: {self.model_id} cannot be "
                               "scored in one pass (set cascade.scoring: generate or auto)")
        if len({p.prefill for p in prompts}) != 1:
            raise BackendError("score() needs one prefill per batch")
        pieces = self.label_pieces(prompts[0].prefill, labels)
        outs = self._gather([self._body(self.render(p), 1, logprobs=TOP_LOGPROBS) for p in prompts])
        probs = []
        for out in outs:
            try:
                top = out["choices"][0]["logprobs"]["top_logprobs"][0] or {}
            except (KeyError, IndexError, TypeError):
                raise BackendError(f"model server {self.base_url} answered without log-probabilities: "
                                   f"{str(out)[:200]}") from None
            probs.append(label_probability(top, pieces))
        return probs

    @contextmanager
    def transcript(self, prompt: ChatPrompt, budget: int) -> Iterator[HTTPTranscript]:
        """An assistant turn on ``prompt`` written step by step, each step one request on the whole text
        (a server with prefix caching pays only for the new part)."""
        yield HTTPTranscript(self, self.render(prompt))


class HTTPTranscript(TextTranscript):
    """``rlog.backends.base.Transcript`` over the completions API: the text is the whole state."""

    def choose(self, choices: Sequence[str], end: str = "") -> list[float]:
        """P(choice + end) renormalised over the choices, from each continuation's prompt log-probabilities
        (``echo``); without log-probabilities, the server's greedy pick gets all the weight."""
        if not choices:
            return []
        b = self._b
        self.steps += 1
        base = len(self.text)
        if b.logprobs:
            outs = b._gather([b._body(self.text + c + end, 1, logprobs=0, echo=True) for c in choices])
            totals = []
            for c, out in zip(choices, outs, strict=True):
                lp = (out.get("choices") or [{}])[0].get("logprobs") or {}
                if not lp.get("text_offset"):
                    raise BackendError(f"model server {b.base_url} did not echo the prompt's log-probabilities")
                totals.append(echoed_logprob(lp, base, base + len(c) + len(end)))
            return renormalised(totals)
        longest = max(b.count_tokens(c + end) for c in choices)
        out = b._gather([b._body(self.text, longest + 1)])[0]
        said = ((out.get("choices") or [{}])[0].get("text") or "")
        best = max(range(len(choices)), key=lambda i: (_agree(said, choices[i] + end), -i))
        return [1.0 if i == best else 0.0 for i in range(len(choices))]

    def generate(self, max_new_tokens: int, stop: Sequence[str] = (), repetition_penalty: float = 1.0,
                 no_repeat_ngram: int = 0) -> tuple[str, str]:
        """Greedy text after the transcript until a stop string (left out), EOS or the budget. The
        server's ``frequency_penalty`` stands in for the repetition penalty (``repetition_penalty - 1``);
        an n-gram block has no completions-API equivalent."""
        b = self._b
        self.steps += 1
        extra = {"frequency_penalty": round(repetition_penalty - 1.0, 3)} if repetition_penalty > 1.0 else {}
        gen = b._generation(b._gather([b._body(self.text, max_new_tokens, stop=stop, **extra)])[0], stop)
        return self._written(gen.text, gen.finish_reason, stop)


def generation_of(out: dict, stop: Sequence[str], server: str = "the model server") -> Generation:
    """A completions answer as a ``Generation``, in the convention every backend keeps: the text ends
    with the stop string that ended it (vLLM leaves it out unless asked, and names it in
    ``stop_reason``), nothing after it; token pieces spell the text."""
    try:
        choice = out["choices"][0]
    except (KeyError, IndexError, TypeError):
        raise BackendError(f"{server} answered without a completion: {str(out)[:200]}") from None
    text = choice.get("text") or ""
    finish = "length" if choice.get("finish_reason") == "length" else "stop"
    reason = choice.get("stop_reason")
    if isinstance(reason, str) and reason in stop and not text.endswith(reason):
        text += reason
    cuts = [(text.find(s), s) for s in stop if s in text]
    if cuts:
        i, s = min(cuts)
        text, finish = text[: i + len(s)], "stop"
    tokens: list[TokenLogprob] = []
    lp = choice.get("logprobs") or {}
    pos = 0
    for tok, value in zip(lp.get("tokens") or [], lp.get("token_logprobs") or [], strict=False):
        if pos >= len(text) or value is None:
            break
        piece = tok[: len(text) - pos]
        tokens.append(TokenLogprob(piece, float(value)))
        pos += len(piece)
    usage = out.get("usage") or {}
    return Generation(text, tuple(tokens), int(usage.get("prompt_tokens") or 0),
                      int(usage.get("completion_tokens") or len(tokens)), finish)


def echoed_logprob(lp: dict, start: int, end: int) -> float:
    """Sum of the echoed prompt's token log-probabilities over the tokens that reach into
    ``[start, end)`` (a token merged across ``start`` counts: each choice pays it alike)."""
    total = 0.0
    for off, tok, v in zip(lp.get("text_offset") or [], lp.get("tokens") or [], lp.get("token_logprobs") or [],
                           strict=False):
        if off >= end:
            break
        if off + len(tok) > start and v is not None:
            total += float(v)
    return total


def _agree(a: str, b: str) -> int:
    """Length of the common prefix of ``a`` and ``b`` (whitespace at the start ignored)."""
    a, b = a.lstrip(), b.lstrip()
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n

