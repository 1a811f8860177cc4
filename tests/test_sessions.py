import logging

import pytest

from rlog.pipeline.sessions import ID_PRESETS, CountWindowSessionizer, IdSessionizer, SessionLine, TimeWindowSessionizer


def ln(seq, raw, ts=None, tpl="t", label=None):
    return SessionLine(seq, ts, raw, "T" + tpl, tpl, label)


def test_id_sessions_multi_id_and_timeout():
    s = IdSessionizer(ID_PRESETS["hdfs"], timeout_s=10)
    assert s.add("f", ln(1, "Receiving blk_1", 0)) == []
    assert s.add("f", ln(2, "replicate blk_1 to blk_2", 1)) == []
    assert s.open_count == 2
    closed = s.add("f", ln(3, "blk_3 start", 20))  # 19 s later: blk_1 and blk_2 idle > 10 s
    assert sorted(x.session_id for x in closed) == ["blk_1", "blk_2"]
    assert all(x.close_reason == "timeout" for x in closed)
    by_id = {x.session_id: x for x in closed}
    assert [line.seq for line in by_id["blk_1"].lines] == [1, 2]
    assert [line.seq for line in by_id["blk_2"].lines] == [2]
    (last,) = s.flush()
    assert last.session_id == "blk_3" and last.close_reason == "end_of_input"
    assert s.stats.opened == 3 and s.stats.closed == 3


def test_lines_without_id_are_counted():
    s = IdSessionizer([r"blk_\d+"])
    s.add("f", ln(1, "nothing here"))
    assert s.stats.unsessioned == 1 and s.open_count == 0


def test_max_len_splits_with_deterministic_ids():
    s = IdSessionizer([r"(req-\d+)"], max_len=2)
    out = []
    for i in range(5):
        out += s.add("f", ln(i + 1, "req-7 step"))
    out += s.flush()
    assert [x.session_id for x in out] == ["req-7", "req-7#3", "req-7#5"]
    assert [x.close_reason for x in out] == ["max_length", "max_length", "end_of_input"]
    assert sum(len(x.lines) for x in out) == 5


def test_open_sessions_bounded_eviction_is_counted_and_logged(caplog):
    s = IdSessionizer([r"(id\d+)"], max_open=3)
    out = []
    with caplog.at_level(logging.WARNING):
        for i in range(10):
            out += s.add("f", ln(i, f"id{i}"))
    assert s.open_count == 3
    assert s.stats.evicted == 7 and len(out) == 7
    assert all(x.close_reason == "evicted" for x in out)
    assert "open-session limit 3" in caplog.text
    assert len(out) + len(s.flush()) == 10  # nothing lost


def test_fixed_count_windows():
    s = CountWindowSessionizer(3)
    out = []
    for i in range(7):
        out += s.add("f", ln(i, f"l{i}"))
    out += s.flush()
    assert [[x.seq for x in w.lines] for w in out] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [w.close_reason for w in out] == ["window_full", "window_full", "end_of_input"]


def test_sliding_count_windows_overlap():
    s = CountWindowSessionizer(4, 2)
    out = []
    for i in range(8):
        out += s.add("f", ln(i, "x"))
    assert [[x.seq for x in w.lines] for w in out] == [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7]]
    assert s.open_count == 1  # [6, 7] still filling


def test_count_windows_are_per_source_and_idle_tick_closes():
    s = CountWindowSessionizer(10, timeout_s=5)
    s.add("a", ln(1, "x", 0))
    s.add("b", ln(1, "x", 100))
    closed = s.tick(103)
    assert [w.source for w in closed] == ["a"] and closed[0].close_reason == "timeout"


def test_fixed_time_windows():
    s = TimeWindowSessionizer(10)
    out = []
    for t in (0, 3, 9, 10, 25):
        out += s.add("f", ln(int(t), "x", float(t)))
    out += s.flush()
    assert [[x.seq for x in w.lines] for w in out] == [[0, 3, 9], [10], [25]]
    assert out[0].close_reason == "window_end"


def test_sliding_time_windows_and_late_lines():
    s = TimeWindowSessionizer(10, 5)
    out = []
    for t in (1, 6, 12, 30):
        out += s.add("f", ln(t, "x", float(t)))
    out += s.add("f", ln(99, "late", 2.0))  # windows containing t=2 are closed: dropped from them, counted
    out += s.flush()
    spans = {w.session_id.rsplit(":", 1)[1]: [x.seq for x in w.lines] for w in out}
    assert spans["0"] == [1, 6] and spans["5"] == [6, 12] and spans["10"] == [12]
    assert s.stats.unsessioned == 1


def test_time_windows_cap_lines():
    s = TimeWindowSessionizer(100, max_len=3)
    for i in range(10):
        s.add("f", ln(i, "x", float(i)))
    (w,) = s.flush()
    assert len(w.lines) == 3 and w.dropped_lines == 7


def test_session_label_and_template_counts():
    s = CountWindowSessionizer(3)
    s.add("f", ln(1, "a", tpl="a", label=False))
    s.add("f", ln(2, "b", tpl="b", label=True))
    (w,) = s.add("f", ln(3, "a", tpl="a", label=False))
    assert w.label is True
    assert w.template_counts() == [("Ta", "a", 2), ("Tb", "b", 1)]


def test_bad_window_parameters():
    with pytest.raises(ValueError):
        CountWindowSessionizer(3, 5)
    with pytest.raises(ValueError):
        TimeWindowSessionizer(0)


@pytest.mark.parametrize("make", [lambda: CountWindowSessionizer(5, max_open=2),
                                  lambda: TimeWindowSessionizer(100, max_open=2)])
def test_window_sources_are_bounded(make):
    s = make()
    out = []
    for i, src in enumerate(["a", "b", "a", "c", "d"]):
        out += s.add(src, ln(i, "x", float(i)))
    assert [w.source for w in out] == ["b", "a"] and all(w.close_reason == "evicted" for w in out)
    assert s.stats.evicted == 2 and s.open_count == 2
    assert sorted(w.source for w in s.flush()) == ["c", "d"]


def test_one_line_stamped_years_ahead_does_not_close_every_window():
    s = TimeWindowSessionizer(10)
    out = []
    for i, t in enumerate((1, 2, 3)):
        out += s.add("f", ln(i, "x", float(t)))
    out += s.add("f", ln(3, "bogus", 1e9))  # one bad clock: untimed, joins the open window
    for i, t in enumerate((4, 5, 12), start=4):
        out += s.add("f", ln(i, "x", float(t)))
    out += s.flush()
    assert [[x.seq for x in w.lines] for w in out] == [[0, 1, 2, 3, 4, 5], [6]]
    assert s.stats.untimed == 1 and s.stats.unsessioned == 0


def test_a_clock_jump_confirmed_by_three_lines_moves_the_windows():
    s = TimeWindowSessionizer(10, max_jump_s=100)
    out = s.add("f", ln(0, "x", 1.0))
    for i in range(1, 4):  # the source comes back after a long silence
        out += s.add("f", ln(i, "x", 5000.0 + i))
    assert [[x.seq for x in w.lines] for w in out] == [[0, 1, 2]]  # the first two jumps were held as untimed
    assert s.stats.untimed == 2
    restored = TimeWindowSessionizer(10, max_jump_s=100)
    restored.load_state(s.state())
    assert [[x.seq for x in w.lines] for w in restored.flush()] == [[3]]
    old = s.state()
    old["sources"] = [row[:3] for row in old["sources"]]  # a checkpoint written before the clock policy
    TimeWindowSessionizer(10).load_state(old)


def _big_session(n=1000, width=3000, templates=4):
    from rlog.pipeline.sessions import Session

    lines = [SessionLine(i, float(i), f"{i} " + "x" * width, f"T{i % templates}", f"tpl {i % templates} " + "y" * width,
                         content="z" * 512) for i in range(n)]
    return Session("big", "app", "window", lines)


def test_a_session_over_the_record_limit_is_shrunk_to_fit_and_keeps_its_counts():
    """Regression: a 1,000-line window of long lines made a multi-megabyte record the producer
    refused (MessageSizeTooLargeError), crashing the parse stage on every restart."""
    import orjson

    from rlog.pipeline.sessions import session_from_dict, session_to_dict
    from rlog.pipeline.sessions.sizing import fit_session

    s = _big_session()
    assert len(orjson.dumps(session_to_dict(s))) > 6_000_000
    sent, value = fit_session(s, 1_000_000)
    assert len(value) <= 1_000_000 and sent is not s
    back = session_from_dict(orjson.loads(value))
    assert back.template_counts() == [(t, tpl, n) for t, tpl, n in sent.template_counts()]
    assert [n for _, _, n in back.template_counts()] == [250] * 4 and back.dropped_lines == 0  # texts cut, lines kept
    assert back.lines[0].raw.endswith("…") and len(back.lines[0].raw) <= 1024
    small = _big_session(n=10, width=10)
    assert fit_session(small, 1_000_000) == (small, orjson.dumps(session_to_dict(small)))  # fits: untouched


def test_when_cutting_texts_is_not_enough_repeated_lines_go_first_and_are_counted():
    import orjson

    from rlog.pipeline.sessions.sizing import fit_session

    s = _big_session(n=1000, width=3000, templates=7)
    wrap = lambda d: {"session": d, "fast": {"verdict": "abnormal"}}  # noqa: E731 - an escalation's shape
    sent, value = fit_session(s, 70_000, wrap)
    assert len(value) <= 70_000 and orjson.loads(value)["fast"] == {"verdict": "abnormal"}
    assert 0 < len(sent.lines) < 1000 and len(sent.lines) + sent.dropped_lines == 1000
    assert {ln.template_id for ln in sent.lines} == {f"T{i}" for i in range(7)}  # every template still shown
    assert [ln.seq for ln in sent.lines] == sorted(ln.seq for ln in sent.lines)  # log order kept
    with pytest.raises(ValueError, match="cannot fit"):
        fit_session(s, 10, wrap)


class _Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def _pipe(clock, **session):
    from rlog.config import load_config
    from rlog.pipeline.pipeline import Pipeline

    cfg = load_config(None, overrides={"parse": {"format": "raw", "multiline": True, "multiline_flush_s": 5},
                                       "session": {"mode": "fixed", "size": 10, "timeout_s": 60, **session}})
    return Pipeline(cfg, clock=clock)


def test_a_quiet_sources_held_record_and_partial_window_are_judged():
    # a dying service's last line: with multi-line merging it was held until a next line that
    # never comes, and a source without timestamps had no clock to close its last window
    from rlog.pipeline.lines import Line

    clock = _Clock()
    p = _pipe(clock)
    for i, text in enumerate(["svc started", "request ok", "FATAL out of memory, exiting"], 1):
        assert p.feed("svc", Line(i, text)) == ([], [])
    p.feed("other", Line(4, "busy line"))
    clock.t += 4.9
    assert p.idle() == ([], []) and p.stats.records == 2  # too soon: the fatal line may still get continuations
    clock.t += 0.2
    assert p.idle() == ([], []) and p.stats.records == 4  # both held records completed, in windows still open
    clock.t += 55.0
    sessions, _ = p.idle()
    by_source = {s.source: s for s in sessions}
    assert set(by_source) == {"svc", "other"} and all(s.close_reason == "idle" for s in sessions)
    assert [ln.raw for ln in by_source["svc"].lines][-1] == "FATAL out of memory, exiting"
    assert p.idle() == ([], [])  # nothing open, nothing closed twice
    p.feed("svc", Line(5, "svc started"))  # a source that logs again starts a new window
    clock.t += 61
    assert [(s.source, len(s.lines)) for s in p.idle()[0]] == [("svc", 1)]


def test_a_source_that_keeps_logging_is_not_closed_early():
    from rlog.pipeline.lines import Line

    clock = _Clock()
    p = _pipe(clock)
    for i in range(1, 9):
        p.feed("svc", Line(i, f"tick {i}"))
        clock.t += 30  # a line every 30 s, under the 60 s timeout
        assert p.idle()[0] == []
    assert p.sessionizer.open_count == 1


def _line(i, ts=None):
    return ln(i, f"line {i}", ts=ts)


def test_closing_a_quiet_source_never_reuses_a_window_id():
    w = CountWindowSessionizer(10)
    for i in range(7):
        w.add("a", _line(i))
    (first,) = w.close_source("a")
    assert first.session_id == "a:lines10/10:0" and len(first.lines) == 7 and first.close_reason == "idle"
    for i in range(7, 12):
        w.add("a", _line(i))
    assert w.close_source("a")[0].session_id == "a:lines10/10:10"  # the next window, not :0 again
    t = TimeWindowSessionizer(60)
    t.add("a", _line(0, ts=1000.0))
    (tw,) = t.close_source("a")
    assert t.add("a", _line(1, ts=1010.0)) == [] and t.open_count == 0  # a late line of it: counted, no twin
    assert t.stats.unsessioned == 1
    t.add("a", _line(2, ts=1100.0))
    assert [s.session_id for s in t.close_source("a")] != [tw.session_id]


def test_a_line_after_a_timed_out_window_starts_a_window_at_once():
    # regression: after a timeout the index stayed mid-window, so the next lines joined no window
    w = CountWindowSessionizer(10, timeout_s=5)
    for i in range(7):
        w.add("a", _line(i, ts=100.0 + i))
    (closed,) = w.tick(200.0)
    assert closed.close_reason == "timeout" and len(closed.lines) == 7
    w.add("a", _line(7, ts=201.0))
    assert w.open_count == 1 and w.flush()[0].session_id == "a:lines10/10:10"


def test_a_held_record_joins_its_session_before_the_clock_closes_it():
    from rlog.config import load_config
    from rlog.pipeline.lines import Line
    from rlog.pipeline.pipeline import Pipeline

    cfg = load_config(None, overrides={"parse": {"format": "log4j", "multiline": True},
                                       "session": {"mode": "fixed", "size": 10, "timeout_s": 60}})
    p = Pipeline(cfg)
    for i, s in enumerate(("00", "01", "02"), 1):
        p.feed("api", Line(i, f"2026-01-05 08:00:{s},000 ERROR [main] c.s.Api: step {i} failed"))
    (closed,), dead = p.tick(p.last_ts + 120)  # the last line was held for continuations; now it is complete
    assert [ln.seq for ln in closed.lines] == [1, 2, 3] and closed.close_reason == "timeout" and dead == []


def test_evicting_a_source_judges_its_held_record_instead_of_dropping_it():
    # seen: the 1,001st source evicted another source's pending record, and the line vanished
    from rlog.config import load_config
    from rlog.pipeline.lines import Line
    from rlog.pipeline.pipeline import Pipeline

    cfg = load_config(None, overrides={"parse": {"format": "raw", "multiline": True},
                                       "session": {"mode": "fixed", "size": 10}})
    p = Pipeline(cfg, max_sources=2)
    for src in ("a", "b", "c"):  # "c" evicts "a", whose one line was held for continuations
        p.feed(src, Line(1, f"disk failure on {src}"))
    assert p.stats.sources_evicted == 1 and p.stats.records == 1  # a's record made it in
    closed, dead = p.flush()
    assert not dead and {s.source for s in closed} == {"a", "b", "c"}
    assert sum(len(s.lines) for s in closed) == 3
