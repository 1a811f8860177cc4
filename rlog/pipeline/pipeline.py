"""Lines in, closed sessions and dead letters out: the part of the plugin before the models.

The steps of ``rlog.pipeline`` composed: line (``lines``, ``envelope``) → record
(``records`` in the source's ``formats``) → template (``templates``) → session
(``sessions``).

One ``RecordParser`` and one Drain3 ``TemplateStore`` per source (file, host, Kafka key), so
template state partitions the way the input does. No Faust here: the stream, the offline
analyzer and the benchmarks all drive this class.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from rlog.config import RlogConfig
from rlog.pipeline.envelope import EnvelopeError, unwrap
from rlog.pipeline.formats import LogFormat, get_format
from rlog.pipeline.lines import DeadLetter, Line
from rlog.pipeline.records import LogRecord, RecordParser
from rlog.pipeline.sessions import Session, SessionLine, make_sessionizer
from rlog.pipeline.sessions.base import clock_step
from rlog.pipeline.templates import TemplateStore
from rlog.truth import LineTruth

log = logging.getLogger(__name__)

RECORD_FLAGS = ("bad_time",)  # flags the parser sets on a record (line flags are counted on entry)
MAX_KEPT_LINE_CHARS = 4096  # raw text kept per session line (evidence); full line was already mined
MAX_KEPT_CONTENT_CHARS = 512  # message text kept per session line (example values shown to the model)


@dataclass
class PipelineStats:
    lines: int = 0
    records: int = 0
    dead_letters: Counter = field(default_factory=Counter)
    flags: Counter = field(default_factory=Counter)
    sources_evicted: int = 0


@dataclass
class _SourceState:
    parser: RecordParser
    store: TemplateStore
    arrival: float = 0.0  # the pipeline's clock at this source's last line (see Pipeline.idle)
    quiet_closed: bool = False  # idle() closed its sessions; nothing more to close until it logs again


class Pipeline:
    """Stateful front half of the plugin; every method returns what it closed."""

    def __init__(self, cfg: RlogConfig, fmt: LogFormat | None = None, *, max_sources: int = 1000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.clock = clock  # wall time for idle(): when each source last logged
        self.fmt = fmt or get_format(cfg.parse.format)
        self.formats = {name: get_format(spec) for name, spec in cfg.parse.formats.items()}
        self.sessionizer = make_sessionizer(cfg.session)
        self.stats = PipelineStats()
        self.last_ts: float | None = None  # latest event time seen (drives idle timeouts in the stream)
        self._ahead = 0  # records in a row far ahead of last_ts (see _advance_clock)
        self.max_sources = max_sources
        self._sources: OrderedDict[str, _SourceState] = OrderedDict()
        # what evicting a source completed (its held record), handed out with the line that evicted it
        self._spilled: tuple[list[Session], list[DeadLetter]] = ([], [])

    def source(self, name: str) -> _SourceState:
        st = self._sources.get(name)
        if st is None:
            if len(self._sources) >= self.max_sources:
                old, old_st = self._sources.popitem(last=False)
                self.stats.sources_evicted += 1
                log.warning("more than %d log sources: dropped template state of %r", self.max_sources, old)
                # its held record is complete now (its source is the least recently active): it is
                # mined and sessioned before the source's state goes, not dropped with it
                sessions, dead = self._route(old_st, old_st.parser.flush())
                self._spilled[0].extend(sessions)
                self._spilled[1].extend(dead)
            p = self.cfg.parse
            fmt = self.formats.get(name, self.fmt)
            st = _SourceState(
                RecordParser(fmt, name, multiline=p.multiline, continuation=p.continuation,
                             max_record_lines=p.max_record_lines,
                             max_record_chars=p.max_line_chars),
                TemplateStore(fmt, max_clusters=p.max_clusters, sim_th=p.sim_th, depth=p.depth,
                              extra_masks=tuple(p.extra_masks)),
            )
            self._sources[name] = st
        else:
            self._sources.move_to_end(name)
        return st

    def templates(self) -> dict[str, TemplateStore]:
        return {k: v.store for k, v in self._sources.items()}

    def feed(self, source: str, line: Line, truth: LineTruth | None = None) -> tuple[list[Session], list[DeadLetter]]:
        """One physical line from ``source`` (a file name, a Kafka key).

        A JSON envelope (see ``parse.envelope``) is opened first: its source field, when
        present, picks the parser and template miner instead of ``source``.

        No line can stop the stream: an unexpected error on one (a bug this input found)
        makes that line a dead letter with the error as its reason, logged with its
        traceback, and the next line is read. A line that crashed the stage would otherwise
        be read again after every restart and hold its partition forever.
        """
        try:
            return self._feed(source, line, truth)
        except Exception as e:  # noqa: BLE001 - any error here is one input's, not the stream's
            return [], [self._failed(source, line.seq, line.text, e)]

    def _feed(self, source: str, line: Line, truth: LineTruth | None) -> tuple[list[Session], list[DeadLetter]]:
        self.stats.lines += 1
        for f in line.flags:
            self.stats.flags[f] += 1
        host = ""
        if self.cfg.parse.envelope != "none":
            try:
                env = unwrap(line.text, self.cfg.parse.envelope)
            except EnvelopeError as e:
                self.stats.dead_letters["bad envelope"] += 1
                return [], [DeadLetter(source, line.seq, line.text, f"bad envelope ({e})")]
            if env.message is not line.text:
                source = env.source or source
                host = env.host or ""
                line = Line(line.seq, env.message, line.flags)
        st = self.source(source)
        st.arrival, st.quiet_closed = self.clock(), False
        sessions, dead = self._route(st, st.parser.feed(line, host=host, truth=truth))
        held = st.parser.pending_ts
        if held is not None:  # the held record is activity: its session must not time out before it joins
            self.sessionizer.touch(st.parser.source, held)
        if self._spilled[0] or self._spilled[1]:
            (s0, d0), self._spilled = self._spilled, ([], [])
            sessions, dead = s0 + sessions, d0 + dead
        return sessions, dead

    def _route(self, st: _SourceState, items: list[LogRecord | DeadLetter]) -> tuple[list[Session], list[DeadLetter]]:
        sessions: list[Session] = []
        dead: list[DeadLetter] = []
        for item in items:
            if isinstance(item, DeadLetter):
                self.stats.dead_letters[item.reason.split(" (")[0]] += 1
                dead.append(item)
                continue
            self.stats.records += 1
            try:
                sessions.extend(self._record(st, item))
            except Exception as e:  # noqa: BLE001 - one record's error, not the stream's (see feed)
                dead.append(self._failed(item.source, item.seq, item.raw, e))
        return sessions, dead

    def _record(self, st: _SourceState, item: LogRecord) -> list[Session]:
        for f in item.flags:
            if f in RECORD_FLAGS:
                self.stats.flags[f] += 1
        if item.ts is not None and (self.last_ts is None or item.ts > self.last_ts):
            self._advance_clock(item)
        m = st.store.mine(item.content)
        sl = SessionLine(item.seq, item.ts, item.raw[:MAX_KEPT_LINE_CHARS], m.template_id, m.template,
                         item.label, m.cluster_id, item.host, item.truth,
                         content=item.content[:MAX_KEPT_CONTENT_CHARS], level=item.fields.get("Level", "").strip(),
                         prior=m.prior, age=m.age)
        return self._finish(self.sessionizer.add(item.source, sl))

    def _failed(self, source: str, seq: int, raw: str, e: Exception) -> DeadLetter:
        log.error("parsing line %d of %r failed; sent to the dead letters", seq, source, exc_info=True)
        reason = f"internal error in parse ({type(e).__name__}: {str(e)[:200]})"
        self.stats.dead_letters[reason.split(" (")[0]] += 1
        return DeadLetter(source, seq, raw, reason)

    def _advance_clock(self, item: LogRecord) -> None:
        """Move ``last_ts`` (which drives idle timeouts) to ``item.ts``, under the same policy
        as the time windows' clocks: a jump beyond ``session.max_jump_s`` counts only once
        three records in a row confirm it, so one line stamped years ahead cannot make the
        stream's clock close every session each tick."""
        assert item.ts is not None
        trusted, self._ahead = clock_step(self.last_ts, item.ts, self.cfg.session.max_jump_s, self._ahead)
        if trusted:
            self.last_ts = item.ts
        else:
            item.flags = (*item.flags, "time_jump")
            self.stats.flags["time_jump"] += 1

    def _finish(self, closed: list[Session]) -> list[Session]:
        """Refresh each line's template to its cluster's current one before judging.

        Early lines of a cluster were mined before Drain generalised it; without this, two
        identical sessions could show different templates and miss the verdict cache.
        """
        for s in closed:
            st = self._sources.get(s.source)
            if st is None:
                continue
            for ln in s.lines:
                ln.template_id, ln.template = st.store.current(ln.cluster_id, ln.template_id, ln.template)
        return closed

    def state(self) -> dict:
        """Everything needed to resume exactly here: per-source parser and miner, open sessions.

        Drain3 state is a compressed JSON snapshot (``TemplateStore.snapshot``); the rest is
        plain JSON-able data.
        """
        import base64

        return {
            "sources": [[name, st.parser.state(), base64.b64encode(st.store.snapshot()).decode()]
                        for name, st in self._sources.items()],
            "sessions": self.sessionizer.state(),
            "stats": {"lines": self.stats.lines, "records": self.stats.records,
                      "dead_letters": dict(self.stats.dead_letters), "flags": dict(self.stats.flags)},
        }

    def load_state(self, d: dict) -> None:
        import base64

        self._sources.clear()
        for name, parser_state, store_b64 in d["sources"]:
            st = self.source(name)
            st.arrival = self.clock()  # quiet time is counted from the restore (wall time is not saved)
            st.parser.load_state(parser_state)
            try:
                st.store.restore(base64.b64decode(store_b64))
            except ValueError as e:  # a SnapshotError or bad base64; restore changed nothing: the source re-learns its
                # templates, under the same ids (they are hashes of the text)
                log.warning("source %r: template state not restored (%s); its templates start afresh", name, e)
        self.sessionizer.load_state(d["sessions"])
        s = d["stats"]
        self.stats.lines, self.stats.records = s["lines"], s["records"]
        self.stats.dead_letters, self.stats.flags = Counter(s["dead_letters"]), Counter(s["flags"])

    def tick(self, now: float) -> tuple[list[Session], list[DeadLetter]]:
        """Close what event time ``now`` has timed out. A held record older than the timeout is
        complete (no continuation comes that late): it joins its session first, so the session
        closes whole, as at the end of a file."""
        sessions: list[Session] = []
        dead: list[DeadLetter] = []
        due = now - min(self.cfg.session.timeout_s, self.cfg.parse.multiline_flush_s)
        for st in self._sources.values():
            ts = st.parser.pending_ts
            if ts is not None and ts <= due:
                s, d = self._route(st, st.parser.flush())
                sessions.extend(s)
                dead.extend(d)
        return sessions + self._finish(self.sessionizer.tick(now)), dead

    def idle(self) -> tuple[list[Session], list[DeadLetter]]:
        """What quiet sources leave open, by wall time since their last line (the stream calls it).

        A source silent for ``parse.multiline_flush_s`` has its held record completed (with
        multi-line merging, the last record otherwise waits for a next line that a dying
        service never writes); one silent for ``session.timeout_s`` has its open sessions
        closed (reason ``idle``), which also covers sources without timestamps, whose windows
        no event-time clock would close.
        """
        now = self.clock()
        sessions: list[Session] = []
        dead: list[DeadLetter] = []
        for name, st in list(self._sources.items()):
            quiet = now - st.arrival
            # never close a source's sessions with its last record still held
            if quiet >= min(self.cfg.parse.multiline_flush_s, self.cfg.session.timeout_s) and st.parser.pending:
                log.debug("source %r quiet for %.1f s: its held record is complete", name, quiet)
                s, d = self._route(st, st.parser.flush())
                sessions.extend(s)
                dead.extend(d)
            if quiet >= self.cfg.session.timeout_s and not st.quiet_closed:
                st.quiet_closed = True
                closed = self._finish(self.sessionizer.close_source(name, "idle"))
                if closed:
                    log.info("source %r quiet for %.0f s: closed %d open session(s)", name, quiet, len(closed))
                sessions.extend(closed)
        return sessions, dead

    def flush(self) -> tuple[list[Session], list[DeadLetter]]:
        """End of input: emit pending records, then close every open session."""
        sessions: list[Session] = []
        dead: list[DeadLetter] = []
        for st in self._sources.values():
            s, d = self._route(st, st.parser.flush())
            sessions.extend(s)
            dead.extend(d)
        sessions.extend(self._finish(self.sessionizer.flush()))
        return sessions, dead

