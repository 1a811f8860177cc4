"""Prometheus metrics of a worker: one registry per app, served on /metrics.

Counters for volumes (lines, parse errors, dead letters, sessions, escalations, alerts),
gauges for state (templates, open sessions, consumer lag), histograms for batch sizes and
model latency per stage. A registry per app (not the process-global one) keeps several
apps in one process, as in tests, from colliding.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_LATENCY = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class WorkerMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.lines = Counter("rlog_lines", "raw log lines consumed", registry=r)
        self.records = Counter("rlog_records", "log records parsed (after multi-line merge)", registry=r)
        self.parse_errors = Counter("rlog_parse_errors", "lines that could not be parsed, by reason", ["reason"],
                                    registry=r)
        self.dead_letters = Counter("rlog_dead_letters", "records sent to the dead-letter topic", ["stage"], registry=r)
        self.templates = Gauge("rlog_templates", "Drain3 templates held by this worker", registry=r)
        self.open_sessions = Gauge("rlog_open_sessions", "sessions open in this worker", registry=r)
        self.evictions = Counter("rlog_session_evictions", "sessions closed early at the open-session bound", registry=r)
        self.unsessioned = Counter("rlog_lines_unsessioned", "records that joined no session (id sessions: no id "
                                   "in the line; time windows: older than every open window)", registry=r)
        self.sources_evicted = Counter("rlog_sources_evicted", "log sources whose parser state was dropped at the "
                                       "source bound (their held record is judged first)", registry=r)
        self.sessions = Counter("rlog_sessions", "sessions closed and published", registry=r)
        self.trimmed = Counter("rlog_records_trimmed", "records shrunk to stream.max_record_bytes (long texts cut, "
                               "repeated lines dropped and counted)", ["topic"], registry=r)
        self.batch_size = Histogram("rlog_batch_size", "events per processed batch", ["stage"], buckets=_BATCH,
                                    registry=r)
        self.model_latency = Histogram("rlog_model_latency_seconds", "model call latency per batch", ["stage"],
                                       buckets=_LATENCY, registry=r)
        self.verdicts = Counter("rlog_verdicts", "session verdicts", ["stage", "verdict"], registry=r)
        self.cache_hits = Counter("rlog_cache_hits", "sessions served from the verdict cache", ["stage"], registry=r)
        self.cache_lookups = Counter("rlog_cache_lookups", "sessions looked up in the verdict cache", ["stage"],
                                     registry=r)
        self.memory_hits = Counter("rlog_memory_hits", "sessions answered from verdict memory without a model call, "
                                   "by kind (signature: a remembered session; known_normal: only known-normal "
                                   "templates; incident: part of an open incident)", ["kind"], registry=r)
        self.memory_entries = Gauge("rlog_memory_entries", "verdicts and known-normal templates held in memory",
                                    registry=r)
        self.explanations_reused = Counter("rlog_explanations_reused", "flagged sessions given an open incident's "
                                           "explanation instead of a new R-Log call", registry=r)
        self.open_incidents = Gauge("rlog_open_incidents", "incidents remembered (open or not yet expired)",
                                    registry=r)
        self.escalations = Counter("rlog_escalations", "sessions sent to the full model", registry=r)
        self.alerts = Counter("rlog_alerts", "alerts published", registry=r)
        self.model_errors = Counter("rlog_model_errors", "model calls that failed after all retries", ["stage"],
                                    registry=r)
        self.checkpoints = Counter("rlog_state_checkpoints", "parser state checkpoints written", registry=r)
        self.checkpoints_discarded = Counter("rlog_state_checkpoints_discarded", "parser checkpoints found on "
                                             "adoption but not continued from (settings, topic, malformed, bounds, "
                                             "unauthentic)",
                                             ["reason"], registry=r)
        self.records_refused = Counter("rlog_records_refused", "records read back that no stage can use (corrupt, "
                                       "out of bounds, or failing the state seal), by record kind and reason; each "
                                       "is logged with its key and offset and set aside, the worker goes on",
                                       ["kind", "reason"], registry=r)
        self.reread = Counter("rlog_input_reread", "input records read again because the group had committed past "
                              "what the partition's checkpoint covers (a stale or lost checkpoint)", registry=r)
        self.input_gap = Counter("rlog_input_gap", "input offsets neither covered by a checkpoint nor still on the "
                                 "broker when they were read again (retention deleted them): lines lost",
                                 registry=r)
        self.cold_starts = Counter("rlog_state_cold_starts", "input partitions taken up past offset 0 without a "
                                   "checkpoint (parser state lost or never saved for them)", registry=r)
        self.publish_errors = Counter("rlog_publish_errors", "sends that failed and were retried (the record is "
                                      "held, not dropped), by rlog topic", ["topic"], registry=r)
        self.broker_up = Gauge("rlog_broker_up", "1 while a Kafka broker answers the worker's probe (every 5 s), "
                               "else 0 (/health says degraded)", registry=r)
        self.lag = Gauge("rlog_consumer_lag", "records behind the end of each input partition", ["topic", "partition"],
                         registry=r)
        # Fetch position runs ahead of work done: a stage that holds its batch (a model backing
        # off) has fetched it, so rlog_consumer_lag stays small while nothing moves. The
        # committed offset moves only when records are acknowledged.
        self.committed_lag = Gauge("rlog_committed_lag", "records of each input partition not yet committed (what "
                                   "a restart reads again; grows while a stage holds its input)",
                                   ["topic", "partition"], registry=r)
