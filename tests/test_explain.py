"""R-Log's structured answer: transcripts on a real model, constrained choices, evidence fallback,
the versioned alert schema, and `rlog alerts` on a real broker."""

from __future__ import annotations

import dataclasses
import math

import jsonschema
import orjson
import pytest

from rlog.cascade.alerts import SCHEMA, Alert, alert_schema, pick_evidence
from rlog.cascade.cards import card, one_line
from rlog.cascade.cascade import Cascade
from rlog.cascade.explain import LEAD_INS, TEXT_FIELDS, structured_answer, tidy_text, written_budget
from rlog.cascade.fallback import category_of, complete
from rlog.config import CascadeConfig, ExplainConfig, ModelSpec
from rlog.contract.answers import FullAnswer
from rlog.contract.prompts import CATEGORIES, VERDICTS, build_prompt
from rlog.contract.representation import view_of
from rlog.pipeline.sessions import Session, SessionLine


def crafted(sid: str, failing: str | None, n: int = 12, source: str = "dn-3") -> Session:
    """A window of routine lines with, optionally, one failing line in the middle."""
    s = Session(sid, source, "window")
    for i in range(n):
        raw, tid, tpl, level = f"heartbeat to nn-1 seq={i}", "T1", "heartbeat to <*> seq=<*>", "INFO"
        if failing is not None and i == n // 2:
            raw, tid, tpl, level = failing, "T9", failing, "ERROR"
        s.lines.append(SessionLine(i, 1_700_000_000.0 + i, raw, tid, tpl, level=level, prior=100 if tid == "T1" else 0,
                                   age=10_000))
    return s


PROMPT = build_prompt("<logs>\n1. disk sda failed: I/O error\n</logs>", "full")


# ---------------------------------------------------------------------- the transcript on a real model

def _sequence_logprob(backend, text: str, start: int) -> float:
    """log P(tokens[start:] | tokens[:start]) by one plain forward pass over the whole text (no cache)."""
    import torch

    ids = backend.tokenizer(text, add_special_tokens=False)["input_ids"]
    with backend.held():
        logits = backend.model(input_ids=torch.tensor([ids])).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    return float(sum(logp[i - 1, ids[i]] for i in range(start, len(ids))))


def test_choices_are_the_models_own_probabilities_over_them_alone(fp32_backend):
    tiny_backend = fp32_backend
    choices = [" " + c for c in CATEGORIES]
    with tiny_backend.transcript(PROMPT, 64) as t:
        t.extend("the disk failed</think><answer>\nverdict: abnormal\ncategory:")
        base = t.text
        probs = t.choose(choices, "\n")
        assert t.text == base  # choosing leaves the transcript as it was
        again = t.choose(choices, "\n")
    assert len(probs) == len(CATEGORIES) and math.isclose(sum(probs), 1.0, rel_tol=1e-6)
    assert probs == pytest.approx(again, rel=1e-4)
    n = len(tiny_backend.tokenizer(base, add_special_tokens=False)["input_ids"])
    raw = [_sequence_logprob(tiny_backend, base + c + "\n", n) for c in choices]
    top = max(raw)
    expect = [math.exp(r - top) for r in raw]
    assert probs == pytest.approx([e / sum(expect) for e in expect], rel=1e-3, abs=1e-6)


def test_choosing_leaves_the_models_state_as_it_was(tiny_backend):
    # the choices are fed side by side on the transcript's own cache and cut off again: what is
    # written next must be what is written without having chosen
    lead = "the disk failed</think><answer>\nverdict:"
    with tiny_backend.transcript(PROMPT, 64) as t:
        t.extend(lead)
        plain, _ = t.generate(10)
    with tiny_backend.transcript(PROMPT, 64) as t:
        t.extend(lead)
        t.choose([" " + v for v in VERDICTS], "\n")
        t.choose([" " + c for c in CATEGORIES], "\n")
        after, _ = t.generate(10)
    assert after == plain


def test_transcript_generation_equals_plain_greedy_decoding(tiny_backend):
    from rlog.backends.base import GenerationParams

    ref = tiny_backend.generate([PROMPT], GenerationParams(max_new_tokens=12, logprobs=False))[0]
    with tiny_backend.transcript(PROMPT, 64) as t:
        start = t.text
        text, finish = t.generate(12)
        assert t.text == start + text
        # cut back and write again: the cache follows the text, so the same tokens come out
        t.reset(start)
        again, _ = t.generate(12)
    assert text == ref.text and again == text and finish in ("length", "stop")


def test_generation_stops_at_its_stop_string_and_leaves_it_out(tiny_backend):
    with tiny_backend.transcript(PROMPT, 64) as t:
        free, _ = t.generate(16)
        t.reset(t.text[: len(t.text) - len(free)])
        stop = free.strip()[:3]
        if not stop:
            pytest.skip("the random model wrote only whitespace")
        cut, finish = t.generate(16, stop=(stop,))
    assert finish == "stop" and stop not in cut and free.startswith(cut)


def test_repetition_controls_break_loops(tiny_backend):
    with tiny_backend.transcript(PROMPT, 200) as t:
        base = t.text
        _, _ = t.generate(40)
        ids_plain = tiny_backend.tokenizer(t.text[len(base):], add_special_tokens=False)["input_ids"]
        t.reset(base)
        t.generate(40, no_repeat_ngram=3)
        ids_ngram = tiny_backend.tokenizer(t.text[len(base):], add_special_tokens=False)["input_ids"]

    def trigrams(ids):
        grams = [tuple(ids[i:i + 3]) for i in range(len(ids) - 2)]
        return len(grams) - len(set(grams))

    assert trigrams(ids_ngram) <= max(1, trigrams(ids_plain))  # re-tokenising the text may join a pair


def test_structured_answer_always_has_a_taxonomy_category_and_a_verdict(tiny_backend):
    cfg = ExplainConfig(think_tokens=8, field_tokens=6)
    with tiny_backend.transcript(PROMPT, written_budget(cfg)) as t:
        ans = structured_answer(t, cfg, continue_as="abnormal")
        written = t.text
    assert ans.ok and ans.verdict in VERDICTS and ans.category in CATEGORIES
    assert 0 < ans.category_p <= 1 and 0 <= ans.p_abnormal <= 1
    assert "\nverdict: abnormal\ncategory: " + ans.category in written  # written under the settled verdict
    for name in TEXT_FIELDS:
        assert f"\n{name}:{LEAD_INS.get(name, '')}" in written and "\n" not in getattr(ans, name)


def test_lead_ins_are_forced_and_left_out_of_the_values(tiny_backend):
    on, off = ExplainConfig(field_tokens=6), ExplainConfig(field_tokens=6, lead_ins=False)
    with tiny_backend.transcript(PROMPT, written_budget(on)) as t:
        structured_answer(t, on, continue_as="abnormal")
        forced = t.text
    with tiny_backend.transcript(PROMPT, written_budget(off)) as t:
        structured_answer(t, off, continue_as="abnormal")
        free = t.text
    assert "\nroot_cause: the most likely root cause is" in forced
    assert "\naction: the recommended fix is to" in forced
    assert "the most likely root cause is" not in free  # a random model does not write it itself


def test_tidy_text_cuts_an_unfinished_value_back_and_treats_none_as_empty():
    assert tidy_text(" The disk failed. It was old and the", "length") == "The disk failed."
    assert tidy_text(" a b c d e f", "length") == "a b c d e …"
    assert tidy_text(" none ", "stop") == "" and tidy_text("N/A.", "stop") == ""
    assert tidy_text(" Replace  the\tdisk", "stop") == "Replace the disk"


def test_tidy_text_drops_the_contract_markup_a_model_starts_again():
    # seen in `make demo` alerts before: "…not normal.</" and "…stop the service.</think><answer>"
    assert tidy_text("Slow write-blocking, which is not normal.</", "length") == "Slow write-blocking, which is not normal."
    assert tidy_text("The recommended fix is to stop the service.</think><answer>", "stop") == \
        "The recommended fix is to stop the service."
    assert tidy_text("restart it <answer> verdict", "stop") == "restart it"
    assert tidy_text("the field <*> is a masked value", "stop") == "the field <*> is a masked value"
    assert tidy_text("</answer>", "stop") == ""


def test_a_value_that_is_only_its_lead_in_is_empty():
    # seen in `make demo`: actions that read "the recommended fix" and nothing more
    for stem in ("the recommended fix", "The recommended fix is", "the most likely root cause is:", "Root cause",
                 "what the logs say happened"):  # the last: the contract's own description, parroted
        assert tidy_text(stem, "stop") == "", stem
    assert tidy_text("the recommended fix is to restart the service", "stop") == \
        "the recommended fix is to restart the service"


# ---------------------------------------------------------------------- fallback and the alert

def test_evidence_picks_the_failing_line_of_a_crafted_session():
    s = crafted("w", "DataNode dn-3: disk /dev/sdb failed: I/O error on block blk_77")
    ev = pick_evidence(s, view_of(s), 3)
    assert ev[0]["template_id"] == "T1" and ev[0]["count"] == 11
    failing = next(e for e in ev if e["template_id"] == "T9")
    assert failing["marks"] == ["failure", "ERROR", "new"]
    assert category_of(ev) == "storage"
    net = crafted("n", "connect to nn-1:8020 refused: connection timed out")
    assert category_of(pick_evidence(net, view_of(net), 3)) == "network"
    assert category_of(pick_evidence(crafted("q", None), None, 3)) == "software"


def test_complete_fills_only_what_is_empty_and_says_so():
    s = crafted("w", "DataNode dn-3: disk /dev/sdb failed: I/O error")
    ev = pick_evidence(s, view_of(s), 3)
    none = complete(None, s, ev)
    assert none.fallback == ["category", "interpretation", "root_cause", "action"]
    assert none.category == "storage" and "disk /dev/sdb failed" in none.root_cause and none.action
    model = FullAnswer("abnormal", "hardware", "", "worn disk", "", category_p=0.7)
    out = complete(model, s, ev)
    assert (out.category, out.root_cause, out.category_p) == ("hardware", "worn disk", 0.7)
    assert out.fallback == ["interpretation", "action"] and out.interpretation and out.action
    assert complete(out, s, ev) == out  # idempotent


def test_alert_schema_names_every_field_of_the_alert():
    schema = alert_schema()
    fields = {f.name for f in dataclasses.fields(Alert)}
    assert set(schema["properties"]) == fields == set(schema["required"])
    assert schema["properties"]["schema"]["const"] == SCHEMA
    jsonschema.Draft202012Validator.check_schema(schema)


def _validate(alert: Alert) -> None:
    jsonschema.validate(orjson.loads(alert.to_json()), alert_schema())


def test_an_adversarial_model_still_yields_readable_alerts_that_match_the_schema(tiny_backend):
    """A random-weight model as both stages: whatever it writes, every alert has every field."""
    cfg = CascadeConfig(fast=ModelSpec(max_new_tokens=4), full=ModelSpec(batch_size=2), scoring="logits",
                        threshold=0.01, band=0.0, explain={"think_tokens": 6, "field_tokens": 5})
    cas = Cascade(tiny_backend, tiny_backend, cfg)
    assert cas.structured
    sessions = [crafted("a", "kernel panic: fatal machine check on cpu 3", source="node-1"),
                crafted("b", "Out of memory: Killed java", source="app-2"), crafted("c", None)]
    judged = cas.judge(sessions)
    alerts = cas.alerts(judged)
    assert cas.stats.escalations == 3 and cas.stats.malformed_full == 0
    assert alerts, "threshold 0.01: the fast stage flags these sessions"
    for a in alerts:
        _validate(a)
        assert a.category in CATEGORIES and a.interpretation and a.root_cause and a.action
        assert a.escalated and "full" in a.scores and set(a.fallback) <= {"interpretation", "root_cause", "action"}
        assert a.category_confidence is not None and "category" not in a.fallback  # the model chose it
        failing = [e["line"] for e in a.evidence if e["template_id"] == "T9"]
        assert a.headline == (failing[0] if failing else a.evidence[0]["line"])
    by_id = {a.session_id: a for a in alerts}
    if "a" in by_id:
        assert "machine check" in by_id["a"].headline


def test_alerts_without_any_full_model_are_readable_too(tiny_backend):
    cfg = CascadeConfig(fast=ModelSpec(max_new_tokens=4), scoring="logits", threshold=0.01, band=0.0, escalate=False,
                        explain={"category": "rule"})
    cas = Cascade(tiny_backend, None, cfg)
    alerts = cas.alerts(cas.judge([crafted("a", "disk sda failed: I/O error")]))
    assert len(alerts) == 1
    a = alerts[0]
    _validate(a)
    assert not a.escalated and a.fallback == ["category", "interpretation", "root_cause", "action"]
    assert a.category == "storage" and a.headline == "disk sda failed: I/O error" and a.category_by == "rule"
    fitted = Cascade(tiny_backend, None, cfg.model_copy(update={"explain": ExplainConfig()}))
    (b,) = fitted.alerts(fitted.judge([crafted("a", "disk sda failed: I/O error")]))
    _validate(b)  # without R-Log, the category model still names the category (with its probability)
    assert b.category_by == "fitted" and b.category_confidence is not None and "category" not in b.fallback


def test_structured_on_needs_a_backend_that_writes_in_steps(tiny_backend):
    class Plain:
        model_id = "plain"

        def generate(self, prompts, params):
            return []

    from rlog.backends.base import BackendError

    with pytest.raises(BackendError, match="cannot write an answer in steps"):
        Cascade(tiny_backend, Plain(), CascadeConfig(explain={"structured": "on"}))
    assert not Cascade(tiny_backend, Plain(), CascadeConfig()).structured  # auto: falls back to generate + parse


# ---------------------------------------------------------------------- reading alerts

def _sample_alert(sid: str = "app:lines0/40:0", verdict: str = "abnormal") -> Alert:
    s = crafted(sid, "DataNode dn-3: disk /dev/sdb failed: I/O error")
    ev = pick_evidence(s, view_of(s), 3)
    full = complete(FullAnswer("abnormal", "storage", "The disk failed.", "A worn disk.", "", category_p=0.81), s, ev)
    return Alert(alert_id=f"id-{sid}", session_id=sid, source=s.source, kind="window", start_ts=s.start_ts,
                 end_ts=s.end_ts, n_lines=12, templates=[{"id": "T1", "template": "heartbeat", "count": 11}],
                 evidence=ev, headline=ev[1]["line"], verdict=verdict, confidence=0.91, scores={"fused": 0.91},
                 category=full.category, category_confidence=full.category_p, interpretation=full.interpretation,
                 root_cause=full.root_cause, action=full.action, escalated=True,
                 models={"fast": "f", "full": "smollm2+rlog"}, fallback=full.fallback)


def test_a_card_shows_what_an_operator_needs():
    a = _sample_alert().to_dict()
    text = card(a)
    assert text.startswith("ABNORMAL 91%  storage 81%  dn-3  2023-11-14 22:13:20 → 22:13:31 UTC  12 lines")
    assert "! DataNode dn-3: disk /dev/sdb failed: I/O error" in text
    assert "cause:" in text and "A worn disk." in text and "do (rule):" in text
    assert "×11" in text and "[failure ERROR new]" in text and "rule-filled: action" in text
    assert one_line(a).startswith("abnormal  91% storage") and "A worn disk." in one_line(a)
    old = {**a, "evidence": ["bare line"], "fallback": []}  # a record from before evidence had counts
    assert "bare line" in card(old)


def test_rlog_alerts_reads_a_jsonl_file(tmp_path, capsys):
    from rlog.cli import main

    p = tmp_path / "alerts.jsonl"
    p.write_bytes(_sample_alert("s1").to_json() + b"\nnot json\n" + _sample_alert("s2", "unknown").to_json() + b"\n")
    assert main(["alerts", str(p), "--abnormal"]) == 0
    out = capsys.readouterr()
    assert out.out.count("ABNORMAL") == 1 and "line 2: not an alert" in out.err
    assert main(["alerts", str(p), "--json"]) == 0
    rows = [orjson.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["session_id"] for r in rows] == ["s1", "s2"]
    for r in rows:
        jsonschema.validate(r, alert_schema())
    assert main(["alerts", str(tmp_path / "missing.jsonl")]) == 2


def test_rlog_alerts_reads_a_real_topic_on_the_embedded_broker(capsys):
    from rlog.cli import main
    from stream.broker import EmbeddedBroker
    from stream.kafka_io import ensure_topics, make_producer

    with EmbeddedBroker() as b:
        ensure_topics(b.bootstrap, {"t.alerts": 2})
        prod = make_producer(b.bootstrap)
        for i in range(3):
            a = _sample_alert(f"s{i}")
            prod.send("t.alerts", key=a.alert_id.encode(), value=a.to_json())
        prod.flush()
        prod.close()
        assert main(["alerts", "--broker", b.bootstrap, "--topic", "t.alerts", "--oneline"]) == 0
        out = capsys.readouterr()
        assert len(out.out.strip().splitlines()) == 3 and "3 alert(s)" in out.err
        assert main(["alerts", "--broker", b.bootstrap, "--topic", "t.alerts", "--limit", "1"]) == 0
        assert capsys.readouterr().out.count("ABNORMAL") == 1
        assert main(["alerts", "--broker", b.bootstrap, "--topic", "nope.alerts"]) == 2
        assert "does not exist" in capsys.readouterr().err


def test_rlog_alerts_without_a_broker_says_what_to_give(monkeypatch, capsys):
    from rlog.cli import main

    monkeypatch.delenv("RLOG_KAFKA_BROKER", raising=False)
    assert main(["alerts"]) == 2
    assert "no broker to read alerts from" in capsys.readouterr().err




# ---------------------------------------------------------------------- hostile alert records (issue 30)

_HOSTILE = "disk \x1b[2J\x1b]0;pwned\x07 failed \u202eexe.txt\x9b31m"


def _hostile_records() -> list[bytes]:
    a = _sample_alert("evil\x1b[31m").to_dict()
    a.update(headline=_HOSTILE, root_cause=_HOSTILE, source="dn-3\x1b[1A",
             evidence=[{"line": _HOSTILE, "count": 2, "marks": ["\x1b[5m"]}])
    return [orjson.dumps(a), orjson.dumps({**a, "verdict": 1}), orjson.dumps({**a, "evidence": [{"line": 3}]}),
            b"\x1b[2J not json", orjson.dumps(_sample_alert("fine").to_dict())]


def _no_controls(text: str) -> None:
    bad = [c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) < 0xA0 or c == "\u202e"]
    assert not bad, (bad, text)


@pytest.mark.parametrize("mode", [[], ["--oneline"]])
def test_rlog_alerts_prints_hostile_log_text_inert_and_goes_on_past_malformed_records(tmp_path, capsys, mode):
    """Issue 30 item 4: a log line's ESC / clear-screen / OSC title sequences reached the operator's
    terminal through the headline, and ``verdict: 1`` crashed card mode with AttributeError."""
    from rlog.cli import main

    p = tmp_path / "alerts.jsonl"
    p.write_bytes(b"\n".join(_hostile_records()) + b"\n")
    assert main(["alerts", str(p), *mode]) == 0
    out = capsys.readouterr()
    _no_controls(out.out)
    _no_controls(out.err)
    assert "\\x1b[2J" in out.out and "\\u202e" in out.out  # shown, escaped: nothing hidden
    assert "line 2: not an alert (verdict is '1'" in out.err and "line 3: not an alert" in out.err
    assert "line 4: not an alert" in out.err and "2 alert(s), 3 unreadable record(s) skipped" in out.err


def test_rlog_alerts_on_a_topic_survives_malformed_records_stops_at_limit_and_on_ctrl_c(tmp_path):
    """``--broker`` mode: malformed records are one line each (topic, partition, offset), ``--limit``
    ends the command, and a following reader exits on Ctrl-C (before: it hung for good)."""
    import signal
    import subprocess
    import sys
    import time

    from stream.broker import EmbeddedBroker
    from stream.kafka_io import ensure_topics, make_producer

    with EmbeddedBroker() as b:
        ensure_topics(b.bootstrap, {"h.alerts": 1})
        prod = make_producer(b.bootstrap)
        for v in _hostile_records():
            prod.send("h.alerts", key=b"k", value=v)
        prod.flush()
        prod.close()
        cmd = [sys.executable, "-m", "rlog.cli", "alerts", "--broker", b.bootstrap, "--topic", "h.alerts"]
        r = subprocess.run([*cmd, "--limit", "2"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr[-2000:]
        _no_controls(r.stdout)
        _no_controls(r.stderr)
        assert r.stdout.count("ABNORMAL") == 2 and "h.alerts[0] offset 1: not an alert" in r.stderr
        follow = subprocess.Popen([*cmd, "--follow", "--oneline"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        try:
            deadline = time.monotonic() + 30
            line = ""
            while time.monotonic() < deadline and "abnormal" not in line:
                line = follow.stdout.readline()
            assert "abnormal" in line
            time.sleep(1)
            follow.send_signal(signal.SIGINT)
            assert follow.wait(15) == 130
            assert "interrupted" in follow.stderr.read()
        finally:
            if follow.poll() is None:
                follow.kill()
