"""Log header formats: split a raw line into header fields and the message content.

Drain3 must mine the message, not timestamps and pids, or every line becomes its own
template. A format is written the Loghub way (``<Date> <Time> <Level>: <Content>``) so
users can copy the patterns published with the Loghub benchmark for their own systems.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rlog.errors import RlogError

# Event times outside 1970-01-01 .. 2100-01-01 (and NaN, infinities) are a broken clock or a
# mangled field, not an event: the line is read as carrying no time (flagged ``bad_time``), so
# one absurd value can neither crash the time arithmetic nor move a window's clock decades.
TIME_RANGE = (0.0, 4_102_444_800.0)


def sane_time(ts: float) -> float | None:
    """``ts`` when it is a finite time inside ``TIME_RANGE``, else None."""
    return ts if math.isfinite(ts) and TIME_RANGE[0] <= ts < TIME_RANGE[1] else None


# Tokens in angle brackets name a header field; everything between is literal regex text.
_FIELD = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)>")


class FormatError(RlogError, ValueError):
    """A format name or pattern that cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class LogFormat:
    """A header layout plus the Drain settings that suit that kind of log.

    ``time_fields``/``time_format`` give event time (for inactivity timeouts and time
    windows); ``time_format`` ``"epoch"`` means the joined fields are Unix seconds.
    ``label_field`` is a ground-truth column some archives carry (BGL's first field);
    a value in ``normal_labels`` means normal, anything else abnormal.
    """

    name: str
    pattern: str
    time_fields: tuple[str, ...] = ()
    time_format: str = ""
    label_field: str | None = None
    normal_labels: tuple[str, ...] = ("-",)
    sim_th: float = 0.5
    depth: int = 4
    extra_masks: tuple[str, ...] = ()
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", compile_pattern(self.pattern))

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.regex.groupindex)

    def match(self, line: str) -> dict[str, str] | None:
        m = self.regex.match(line)
        return m.groupdict(default="") if m else None

    @property
    def yearless(self) -> bool:
        """Times without a year (syslog's ``Jun 14 15:16:01``): read in year 2000, a leap year so
        ``Feb 29`` parses; ``RecordParser`` moves them across New Year per source."""
        fmt = self.time_format
        return bool(self.time_fields) and fmt != "epoch" and "%Y" not in fmt and "%y" not in fmt

    def timestamp(self, fields: dict[str, str]) -> float | None:
        """Event time in seconds, or None when the line carries no usable time."""
        if not self.time_fields:
            return None
        text = " ".join(fields.get(f, "").strip() for f in self.time_fields)
        try:
            if self.time_format == "epoch":
                return sane_time(float(text))
            fmt = self.time_format
            if self.yearless:
                text, fmt = "2000 " + text, "%Y " + fmt
            dt = datetime.strptime(text, fmt)
        except ValueError:
            return None
        if dt.tzinfo is None:  # no zone in the line: read it as UTC
            dt = dt.replace(tzinfo=UTC)
        return sane_time(dt.timestamp())

    def label(self, fields: dict[str, str]) -> bool | None:
        """True for a labelled anomaly, False for labelled normal, None when unlabelled."""
        if self.label_field is None:
            return None
        return fields.get(self.label_field, "").strip() not in self.normal_labels


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Turn a Loghub-style header pattern into an anchored regex.

    Runs of spaces match any whitespace run; ``<Content>`` takes the rest of the line and
    every other field is non-greedy, as in the Loghub benchmark.
    """
    names = _FIELD.findall(pattern)
    if "Content" not in names:
        raise FormatError(f"format pattern {pattern!r} has no <Content> field: "
                          "write the message part as <Content>, e.g. '<Date> <Time> <Level>: <Content>'")
    if len(set(names)) != len(names):
        raise FormatError(f"format pattern {pattern!r} names a field twice")
    parts = _FIELD.split(pattern)
    out = []
    for i, part in enumerate(parts):
        if i % 2 == 0:
            out.append(re.sub(" +", r"\\s+", part))
        elif part == "Content":
            out.append(f"(?P<{part}>.*)")
        else:
            out.append(f"(?P<{part}>.*?)")
    try:
        return re.compile("^" + "".join(out) + "$", re.DOTALL)
    except re.error as e:
        raise FormatError(f"format pattern {pattern!r} is not a valid regex: {e}") from None


PRESETS: dict[str, LogFormat] = {
    f.name: f
    for f in [
        LogFormat("raw", "<Content>"),
        LogFormat("hdfs", "<Date> <Time> <Pid> <Level> <Component>: <Content>",
                  ("Date", "Time"), "%y%m%d %H%M%S"),
        LogFormat("bgl", "<Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> <Content>",
                  ("Timestamp",), "epoch", label_field="Label"),
        LogFormat("thunderbird",
                  r"<Label> <Timestamp> <Date> <User> <Month> <Day> <Time> <Location> <Component>(\[<PID>\])?: <Content>",
                  ("Timestamp",), "epoch", label_field="Label"),
        LogFormat("hadoop", r"<Date> <Time> <Level> \[<Process>\] <Component>: <Content>",
                  ("Date", "Time"), "%Y-%m-%d %H:%M:%S,%f"),
        # Java services with the common log4j/logback layout "%d %p [%t] %c: %m".
        LogFormat("log4j", r"<Date> <Time> <Level> \[<Thread>\] <Component>: <Content>",
                  ("Date", "Time"), "%Y-%m-%d %H:%M:%S,%f"),
        # BGL's layout without Loghub's label column: what a Blue Gene-style RAS feed looks like live.
        LogFormat("ras", "<Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> <Content>",
                  ("Timestamp",), "epoch"),
        LogFormat("openstack", r"<Logrecord> <Date> <Time> <Pid> <Level> <Component> \[<ADDR>\] <Content>",
                  ("Date", "Time"), "%Y-%m-%d %H:%M:%S.%f"),
        LogFormat("linux", r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>",
                  ("Month", "Date", "Time"), "%b %d %H:%M:%S", sim_th=0.39, depth=6),
        LogFormat("syslog", r"<Month> <Date> <Time> <Host> <Component>(\[<PID>\])?: <Content>",
                  ("Month", "Date", "Time"), "%b %d %H:%M:%S", sim_th=0.39, depth=6),
        # rsyslog's high-precision RFC 3339 file format (the Debian 12 default): year and zone included.
        LogFormat("rsyslog", r"<Time> <Host> <Component>(\[<PID>\])?: <Content>",
                  ("Time",), "%Y-%m-%dT%H:%M:%S.%f%z", sim_th=0.39, depth=6),
        LogFormat("apache", r"\[<Time>\] \[<Level>\] <Content>", ("Time",), "%a %b %d %H:%M:%S %Y"),
        LogFormat("spark", "<Date> <Time> <Level> <Component>: <Content>",
                  ("Date", "Time"), "%y/%m/%d %H:%M:%S"),
        LogFormat("zookeeper", r"<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>",
                  ("Date", "Time"), "%Y-%m-%d %H:%M:%S,%f"),
        LogFormat("openssh", r"<Date> <Day> <Time> <Component> sshd\[<Pid>\]: <Content>",
                  ("Date", "Day", "Time"), "%b %d %H:%M:%S", sim_th=0.6, depth=5),
        LogFormat("hpc", "<LogId> <Node> <Component> <State> <Time> <Flag> <Content>", ("Time",), "epoch"),
        LogFormat("proxifier", r"\[<Time>\] <Program> - <Content>", sim_th=0.6, depth=3),
        LogFormat("android", "<Date> <Time>  <Pid>  <Tid> <Level> <Component>: <Content>",
                  ("Date", "Time"), "%m-%d %H:%M:%S.%f", sim_th=0.2, depth=6),
        LogFormat("healthapp", r"<Time>\|<Component>\|<Pid>\|<Content>", ("Time",), "%Y%m%d-%H:%M:%S:%f",
                  sim_th=0.2),
        LogFormat("mac", r"<Month>  <Date> <Time> <User> <Component>\[<PID>\]( \(<Address>\))?: <Content>",
                  ("Month", "Date", "Time"), "%b %d %H:%M:%S", sim_th=0.7, depth=6),
        LogFormat("windows", "<Date> <Time>, <Level>                  <Component>    <Content>",
                  ("Date", "Time"), "%Y-%m-%d %H:%M:%S", sim_th=0.7, depth=5),
    ]
}


def get_format(spec: str) -> LogFormat:
    """A preset by name (case-insensitive) or a user pattern containing ``<Content>``."""
    key = spec.strip().lower()
    if key in PRESETS:
        return PRESETS[key]
    if "<" in spec:
        return LogFormat("custom", spec)
    raise FormatError(
        f"unknown log format {spec!r}: use one of {', '.join(sorted(PRESETS))}, "
        "or a Loghub-style pattern such as '<Date> <Time> <Level>: <Content>'"
    )
