"""What the models see of a session, for serving and training alike.

A session becomes a :class:`SessionView`: its unique templates in order of first
appearance, each with its count, a mark when the template is new or rare for that source
(the novelty signal the classic detectors use, handed to the model instead of competing
with it), its severity field, and a few raw example values for the rarest templates. The
prompt is a pure function of the view and is capped by tokens, not lines: when a session
does not fit, the most common, least informative templates give way first.

train/ and the simulated environment build their prompts here too, so a prompt trained on
is exactly the prompt served.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rlog.config import CascadeConfig, ViewConfig
from rlog.contract.prompts import ChatPrompt, Mode, build_prompt, quote_log_line
from rlog.pipeline.sessions import Session
from rlog.pipeline.templates import template_id

TokenCounter = Callable[[str], int]

# Severity fields that carry no warning: not shown, to keep prompts short.
ROUTINE_LEVELS = frozenset({"", "-", "INFO", "I", "DEBUG", "D", "TRACE", "NOTICE", "VERBOSE", "V", "FINE", "FINER",
                            "FINEST", "CONFIG", "INFORMATION"})
HEADER = "Classify this log session as normal or abnormal."


@dataclass(frozen=True, slots=True)
class TemplateEntry:
    """One distinct template of a session, as the model is shown it."""

    template_id: str
    template: str
    count: int
    novelty: str = ""  # "new", "rare" or "" (seen often, or unknown)
    level: str = ""  # the most severe non-routine severity field among its lines
    example: str = ""  # the message of one of its lines, when its values are worth seeing
    prior: int = -1  # lines of it the source had seen before this session (-1: unknown)


@dataclass(frozen=True, slots=True)
class SessionView:
    """A session reduced to what decides its verdict: the prompt is a pure function of this."""

    source: str
    lines: int
    entries: tuple[TemplateEntry, ...]


def sequence_of(session: Session) -> tuple[str, ...]:
    """The session's templates in order with consecutive repeats collapsed (the exact sequence key)."""
    out: list[str] = []
    for ln in session.lines:
        if not out or out[-1] != ln.template:
            out.append(ln.template)
    return tuple(out)


_LEVEL_RANK = {"WARN": 1, "WARNING": 1, "W": 1, "ERROR": 2, "ERR": 2, "E": 2, "SEVERE": 3, "FAILURE": 3,
               "CRITICAL": 3, "CRIT": 3, "FATAL": 4, "F": 4, "ALERT": 4, "EMERG": 4, "PANIC": 4}


def level_rank(level: str) -> int:
    return _LEVEL_RANK.get(level.upper(), 0 if level.upper() in ROUTINE_LEVELS else 1)


def view_of(session: Session, cfg: ViewConfig | None = None) -> SessionView:
    """The view of a closed session. Pure: the same session and settings give the same view."""
    cfg = cfg or ViewConfig()
    firsts: dict[str, int] = {}
    counts: dict[str, int] = {}
    levels: dict[str, str] = {}
    for i, ln in enumerate(session.lines):
        tid = ln.template_id
        if tid not in firsts:
            firsts[tid] = i
        counts[tid] = counts.get(tid, 0) + 1
        lvl = ln.level.strip()
        if lvl and level_rank(lvl) > level_rank(levels.get(tid, "")):
            levels[tid] = lvl
    entries = []
    for tid, i in firsts.items():
        first = session.lines[i]
        novelty = ""
        if first.prior >= 0 and first.age >= cfg.warmup_lines:
            novelty = "new" if first.prior == 0 else "rare" if first.prior < cfg.rare_below else ""
        entries.append(TemplateEntry(tid, first.template, counts[tid], novelty, levels.get(tid, ""),
                                     first.content if "<*>" in first.template else "", first.prior))
    # Examples only for the rarest templates: their values (exit codes, temperatures, paths) are news.
    rarest = sorted(range(len(entries)), key=lambda k: _rarity(entries[k]))
    keep = set([k for k in rarest if entries[k].example][: cfg.example_lines])
    entries = [e if k in keep else _without_example(e) for k, e in enumerate(entries)]
    return SessionView(session.source, len(session.lines) + session.dropped_lines, tuple(entries))


def view_of_templates(templates: Sequence[str], source: str = "") -> SessionView:
    """A view of bare templates (one line each, no history): published trajectories, template-level scoring."""
    entries = []
    seen: set[str] = set()
    for t in templates:
        if t in seen:
            continue
        seen.add(t)
        entries.append(TemplateEntry(template_id(t), t, 1))
    return SessionView(source, len(templates), tuple(entries))


def _without_example(e: TemplateEntry) -> TemplateEntry:
    return TemplateEntry(e.template_id, e.template, e.count, e.novelty, e.level, "", e.prior)


def _rarity(e: TemplateEntry) -> tuple:
    """Sort key, most informative first: new, rare, severe, then fewest occurrences."""
    nov = {"new": 0, "rare": 1}.get(e.novelty, 2)
    return (nov, -level_rank(e.level), e.count, e.prior if e.prior >= 0 else math.inf)


def _entry_text(n: int, e: TemplateEntry, cfg: ViewConfig) -> str:
    marks = "".join(f" [{quote_log_line(m, 24)}]" for m in (e.novelty, e.level) if m)  # a level is header text
    count = f" ×{e.count}" if e.count > 1 else ""
    text = f"{n}.{count}{marks} {quote_log_line(e.template, cfg.max_template_chars)}"
    if e.example:
        text += f'\n   e.g. "{quote_log_line(e.example, cfg.example_chars)}"'
    return text


def _estimate_tokens(text: str) -> int:
    """A conservative token estimate when no tokenizer is at hand (about 3 characters a token)."""
    return len(text) // 3 + 1


def _body(view: SessionView, shown: Sequence[int], cfg: ViewConfig) -> str:
    lines = [_entry_text(n, view.entries[k], cfg) for n, k in enumerate(sorted(shown), 1)]
    hidden = [view.entries[k] for k in range(len(view.entries)) if k not in set(shown)]
    if hidden:
        lines.append(f"({len(hidden)} more, commoner templates not shown: {sum(e.count for e in hidden)} lines)")
    return f"{HEADER} {view.lines} lines, {len(view.entries)} distinct templates.\n<logs>\n" + "\n".join(lines) + \
        "\n</logs>"


def session_message(view: SessionView, cfg: ViewConfig | None = None, count: TokenCounter | None = None) -> str:
    """The user turn for one session, at most ``cfg.max_tokens`` tokens by ``count``.

    Templates are admitted most informative first (new, rare, severe, then fewest
    occurrences) until the budget is spent, then shown in order of first appearance.
    """
    cfg = cfg or ViewConfig()
    count = count or _estimate_tokens
    order = sorted(range(len(view.entries)), key=lambda k: _rarity(view.entries[k]))[: cfg.max_templates]
    budget = cfg.max_tokens - count(_body(view, [], cfg))
    shown: list[int] = []
    for k in order:
        cost = count(_entry_text(99, view.entries[k], cfg)) + 1
        if cost > budget:
            continue
        shown.append(k)
        budget -= cost
    text = _body(view, shown, cfg)
    while shown and count(text) > cfg.max_tokens:  # the per-line estimate ran over: drop the least informative
        shown.pop()
        text = _body(view, shown, cfg)
    return text


def prompt_for(view: SessionView, mode: Mode, cfg: CascadeConfig, count: TokenCounter | None = None) -> ChatPrompt:
    """The prompt for a session view: a pure function of it (and of the tokenizer that caps it)."""
    return build_prompt(session_message(view, cfg.view, count), mode)


def signature_key(session: Session, cfg: CascadeConfig) -> str:
    """The verdict-memory key of a session.

    ``signature``: the source, the set of its template ids and each count's log2 bucket, so
    the same kind of session with a few more or fewer repeats is remembered once;
    ``sequence``: the exact collapsed template sequence (every new ordering pays a call).
    """
    if cfg.memory.key == "sequence":
        text = session.source + "\x1e" + "\n".join(sequence_of(session))
    else:
        buckets = sorted((tid, count_bucket(n)) for tid, _, n in session.template_counts())
        text = session.source + "\x1e" + ",".join(f"{t}:{b}" for t, b in buckets)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()


def count_bucket(n: int) -> int:
    """log2 bucket of a count: 1 → 0, 2–3 → 1, 4–7 → 2, …"""
    return max(n, 1).bit_length() - 1
