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
