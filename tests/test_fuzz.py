"""Property-based tests (hypothesis): whatever bytes arrive, no exception escapes a stage,
every line is accounted for, and no prompt carries a live tag or chat control token."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlog.config import CascadeConfig, load_config
from rlog.contract.prompts import quote_log_line
from rlog.contract.representation import prompt_for, view_of
from rlog.pipeline.formats import PRESETS
from rlog.pipeline.lines import decode_line
from rlog.pipeline.pipeline import Pipeline

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pieces real logs and hostile inputs are made of: headers of every preset, times good and bad,
# JSON, tags and the control tokens of common chat templates.
_PIECES = st.sampled_from([
    "2026-01-05 08:00:00,008 INFO [t-1] c.s.Api: ", "081109 203615 148 INFO dfs.DataNode$PacketResponder: ",
    "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS KERNEL INFO ",
    "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: ", "nan", "inf", "-1e308", "1e999", "32503680000", "1131566461",
    "<answer>abnormal</answer>", "</think>", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "[INST]", "<<SYS>>",
    "<s>", "</s>", "<start_of_turn>", "<file_sep>", "<repo_name>", "<filename>", "s>", "<_", "_of_turn>",
    "<|", "|>", "<", ">", "\x00", "\r\n", "\n", "\t", "é", "\ud7ff", "blk_-1608999687919862906", "{", "}", "\"",
    "error", "kernel panic", " ", "x" * 300,
])
_TEXT = st.lists(st.one_of(_PIECES, st.text(max_size=20)), max_size=12).map("".join)
_ENVELOPE = st.fixed_dictionaries(
    {"message": st.one_of(_TEXT, st.integers(), st.none(), st.lists(st.integers(), max_size=2))},
    optional={"source": st.one_of(st.sampled_from(["api", "storage", "syslog", "compute", ""]), st.integers()),
              "host": st.one_of(st.text(max_size=8), st.none()), "ts": st.one_of(st.floats(), st.text(max_size=5))},
).map(lambda d: json.dumps(d, ensure_ascii=False).encode("utf-8", "surrogatepass"))
_LINE = st.one_of(st.binary(max_size=200), _TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")), _ENVELOPE)


def _pipe(fmt: str, by: str, envelope: str) -> Pipeline:
    session = {"by": by, "size": 5 if by == "count" else 30.0}
    return Pipeline(load_config(env={}, overrides={"parse": {"format": fmt, "multiline": False, "envelope": envelope},
                                                   "session": session}))


@pytest.mark.parametrize("by", ["count", "time"])
@pytest.mark.parametrize("envelope", ["none", "json"])
@FUZZ
@given(fmt=st.sampled_from(sorted(PRESETS)), lines=st.lists(_LINE, max_size=25))
def test_any_input_is_parsed_or_dead_lettered_and_every_line_is_accounted_for(by, envelope, fmt, lines):
    pipe = _pipe(fmt, by, envelope)
    sessions, dead = [], []
    for seq, raw in enumerate(lines):
        s, d = pipe.feed("src", decode_line(raw, seq, 4096))
        sessions += s
        dead += d
    s, d = pipe.flush()
    sessions += s
    dead += d
    assert not [x for x in dead if x.reason.startswith("internal error")], dead  # a bug, not bad input
    assert pipe.stats.records + len(dead) == len(lines)  # one record or one dead letter per line
    kept = sum(len(x.lines) + x.dropped_lines for x in sessions)
    assert kept + pipe.sessionizer.stats.unsessioned == pipe.stats.records
    for x in sessions:
        prompt = prompt_for(view_of(x), "fast", CascadeConfig())
        _assert_defanged(prompt.messages[-1]["content"])


_LIVE = re.compile(r"<\s*/?\s*(?:answer|think|logs|system|user|assistant)\b[^>]*>|<\|[^|>]{0,40}\|>|\[/?INST\]|<</?SYS>>"
                   r"|</?s>|<(?:start|end)_of_turn>|<file_sep>|<repo_name>|<filename>", re.IGNORECASE)


def _assert_defanged(text: str) -> None:
    logs = text.split("<logs>", 1)[-1].rsplit("</logs>", 1)[0] if "<logs>" in text else text
    assert not _LIVE.search(logs), logs


@FUZZ
@given(text=_TEXT, cap=st.integers(min_value=2, max_value=400))
def test_a_quoted_log_line_has_no_live_tag_or_control_token_and_keeps_its_cap(text, cap):
    out = quote_log_line(text, cap)
    assert len(out) <= cap and "\n" not in out and "\r" not in out
    assert not _LIVE.search(out), out
